"""How the PostgreSQL gallery reads its rows back: a collection's row, checked wherever it is read (a
row no write could have stored is quarantined, never served), and a face's row as a FaceRecord."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores.postgres.schema import faces_table
from domain.errors import CollectionNotFound, CollectionUnavailable
from domain.gallery import CollectionInfo, FaceRecord, collection_problem

# A collection's row as `checked` reads it: its values, and whether its partition exists.
COLLECTION = (
    "SELECT id, name, model_id, dimension, threshold, created_at, subjects, faces, most_subject_faces,"
    " to_regclass('gallery_faces_' || id) IS NOT NULL FROM gallery_collections"
)
FACE_COLUMNS = "face_id, external_id, embedding, x1, y1, x2, y2, confidence, source_digest, created_at"


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


def problem(row: Sequence[Any]) -> str | None:
    """What makes a collection row (as COLLECTION reads it) unservable, or None."""
    _, name, model_id, dimension, threshold, _, subjects, faces, most, partition = row
    found = collection_problem(name, model_id, dimension, threshold)
    if found is None and min(subjects, faces, most) < 0:
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
    _, name, model_id, dimension, threshold, created_at, subjects, faces, _, _ = row
    return CollectionInfo(name, model_id, dimension, threshold, created_at, int(subjects), int(faces))


def record(row: Sequence[Any]) -> FaceRecord:
    """A face from FACE_COLUMNS."""
    face_id, external_id, embedding, x1, y1, x2, y2, confidence, digest, created_at = row
    return FaceRecord(
        face_id=face_id,
        external_id=external_id,
        embedding=embedding,
        bbox=None if x1 is None else (x1, y1, x2, y2),
        confidence=confidence,
        source_digest=digest,
        created_at=created_at,
    )


def _target(row: Sequence[Any]) -> Target:
    return Target(int(row[0]), int(row[3]), int(row[6]), int(row[7]), int(row[8]))
