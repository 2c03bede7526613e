"""How the PostgreSQL gallery reads its rows back: a collection's row, checked wherever it is read (a
row no write could have stored is quarantined, never served), a subject's row, and the face columns
it selects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores.face_rows import COLUMNS
from adapters.stores.postgres.schema import faces_table
from domain.errors import CollectionNotFound, CollectionUnavailable, PhotoNotFound, SubjectNotFound
from domain.gallery import CollectionInfo, PhotoInfo, collection_problem

# A collection's row as `checked` reads it: its values, and whether its partition exists.
COLLECTION = (
    "SELECT id, name, model_id, dimension, threshold, created_at, subjects, faces, most_subject_faces, photos,"
    " to_regclass('gallery_faces_' || id) IS NOT NULL FROM gallery_collections"
)
FACE_COLUMNS = ", ".join(COLUMNS)


@dataclass(frozen=True, slots=True)
class Target:
    """A collection as a write or a search needs it, with the counts its row keeps."""

    id: int
    dimension: int
    subjects: int
    faces: int
    most_subject_faces: int  # the most faces a subject has had: how many faces an HNSW search groups

    @property
    def table(self) -> sql.Identifier:
        return faces_table(self.id)


def find(conn: psycopg.Connection[TupleRow], name: str) -> Target:
    return _target(checked(conn.execute(COLLECTION + " WHERE name = %s", (name,)).fetchone(), name))


def locked(conn: psycopg.Connection[TupleRow], name: str) -> Target:
    """The collection, its row locked until the transaction ends: one writer per collection at a time."""
    return _target(checked(conn.execute(COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone(), name))


def subject(
    conn: psycopg.Connection[TupleRow], target: Target, collection: str, external_id: str
) -> tuple[int, datetime]:
    """The subject's face count and first enrolment time; SubjectNotFound when the collection has no such subject."""
    row = conn.execute(
        "SELECT faces, created_at FROM gallery_subjects WHERE collection_id = %s AND external_id = %s",
        (target.id, external_id),
    ).fetchone()
    if row is None:
        raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
    return int(row[0]), row[1]


def photo(conn: psycopg.Connection[TupleRow], target: Target, collection: str, photo_id: str) -> PhotoInfo:
    """The photo's row; PhotoNotFound when the collection has no such photo."""
    row = conn.execute(
        "SELECT source_digest, faces, created_at FROM gallery_photos WHERE collection_id = %s AND photo_id = %s",
        (target.id, photo_id),
    ).fetchone()
    if row is None:
        raise PhotoNotFound(f"collection {collection!r} has no photo {photo_id!r}")
    return PhotoInfo(photo_id, row[0], int(row[1]), row[2])


def problem(row: Sequence[Any]) -> str | None:
    """What makes a collection row (as COLLECTION reads it) unservable, or None."""
    _, name, model_id, dimension, threshold, _, subjects, faces, most, photos, partition = row
    found = collection_problem(name, model_id, dimension, threshold)
    if found is None and min(subjects, faces, most, photos) < 0:
        found = "its subject or face counts are negative"
    if found is None and not partition:
        found = "its faces' table is missing"
    return found


def checked(row: Sequence[Any] | None, name: str) -> Sequence[Any]:
    if row is None:
        raise CollectionNotFound(f"collection {name!r} does not exist")
    found = problem(row)
    if found is not None:
        raise CollectionUnavailable(
            f"collection {name!r} is quarantined: {found}; it is not served until an operator deletes or repairs it"
        )
    return row


def info(row: Sequence[Any]) -> CollectionInfo:
    _, name, model_id, dimension, threshold, created_at, subjects, faces, _, photos, _ = row
    return CollectionInfo(name, model_id, dimension, threshold, created_at, int(subjects), int(faces), int(photos))


def _target(row: Sequence[Any]) -> Target:
    return Target(int(row[0]), int(row[3]), int(row[6]), int(row[7]), int(row[8]))
