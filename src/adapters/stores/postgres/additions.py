"""Adding faces on PostgreSQL: read what the add-faces rule (domain/additions.py) needs, ask it, write
what it answers. The caller's transaction holds the collection's row lock (`rows.locked`), so the
counts cannot change underneath, on this replica or another."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores import checks
from adapters.stores.face_rows import face_record, landmarks_text, quality_text
from adapters.stores.postgres.rows import FACE_COLUMNS, Target
from adapters.stores.postgres.vector_codec import PgVector
from domain.additions import Additions, StoredState, plan_additions
from domain.gallery import FaceRecord, GalleryLimits

COPY_FROM = 64  # faces added at once from which COPY beats INSERT
_COPY_TYPES = (
    "int8",
    "text",
    "text",
    "text",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "timestamptz",
    "text",
    "text",
)  # then the vector's
_INSERT_COLUMNS = (
    "collection_id, face_id, external_id, source_digest, x1, y1, x2, y2, confidence, created_at,"
    " landmarks, quality, embedding"
)


def add_faces(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    collection: str,
    faces: Sequence[FaceRecord],
    limits: GalleryLimits,
    vector_oid: int,
) -> list[tuple[FaceRecord, bool]]:
    """Each face as `add_face` answers it; raises (and writes nothing) when one would pass a limit."""
    records = [checks.stored(face, target.dimension) for face in faces]
    names = sorted({face.external_id for face in records})
    held: dict[str, int] = dict(
        conn.execute(
            "SELECT external_id, faces FROM gallery_subjects WHERE collection_id = %s AND external_id = ANY(%s)",
            (target.id, names),
        ).fetchall()
    )
    state = StoredState(target.subjects, target.faces, held, _faces_by_source(conn, target, records))
    plan = plan_additions(collection, records, limits, state)
    if plan.new_faces:
        _write(conn, target, plan, held, vector_oid)
    return plan.results


def _faces_by_source(
    conn: psycopg.Connection[TupleRow], target: Target, faces: Sequence[FaceRecord]
) -> dict[tuple[str, str], FaceRecord]:
    """The stored faces with the (external id, source digest) of any of `faces` (the unique index)."""
    cursor = conn.cursor(binary=True)
    if len(faces) == 1:
        query = sql.SQL("SELECT {} FROM {} WHERE external_id = %s AND source_digest = %s").format(
            sql.SQL(FACE_COLUMNS), target.table
        )
        cursor.execute(query, (faces[0].external_id, faces[0].source_digest))
    else:
        query = sql.SQL(
            "SELECT {} FROM {} AS f JOIN unnest(%s::text[], %s::text[]) AS wanted (external_id, source_digest)"
            " ON f.external_id = wanted.external_id AND f.source_digest = wanted.source_digest"
        ).format(sql.SQL(", ".join(f"f.{column}" for column in FACE_COLUMNS.split(", "))), target.table)
        cursor.execute(query, ([face.external_id for face in faces], [face.source_digest for face in faces]))
    found = [face_record(row) for row in cursor.fetchall()]
    return {(face.external_id, face.source_digest): face for face in found}


def _write(
    conn: psycopg.Connection[TupleRow], target: Target, plan: Additions, held: dict[str, int], vector_oid: int
) -> None:
    """The plan's subjects and faces, and the counts the collection's row keeps."""
    added = Counter(face.external_id for face in plan.new_faces)
    conn.cursor().executemany(
        "INSERT INTO gallery_subjects (collection_id, external_id, created_at, faces) VALUES (%s, %s, %s, %s)",
        [(target.id, first.external_id, first.created_at, added[first.external_id]) for first in plan.new_subjects],
    )
    conn.cursor().executemany(
        "UPDATE gallery_subjects SET faces = faces + %s WHERE collection_id = %s AND external_id = %s",
        [(count, target.id, name) for name, count in added.items() if name in held],
    )
    rows = [
        (
            target.id,
            face.face_id,
            face.external_id,
            face.source_digest,
            *(face.bbox or (None, None, None, None)),
            face.confidence,
            face.created_at,
            landmarks_text(face.landmarks),
            quality_text(face.quality),
            PgVector(face.embedding),
        )
        for face in plan.new_faces
    ]
    if len(rows) < COPY_FROM:
        conn.cursor().executemany(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                target.table, sql.SQL(_INSERT_COLUMNS), sql.SQL(", ").join([sql.Placeholder()] * 13)
            ),
            rows,
        )
    else:
        copy_faces = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target.table, sql.SQL(_INSERT_COLUMNS))
        with conn.cursor().copy(copy_faces) as copy:
            copy.set_types([*_COPY_TYPES, vector_oid])
            for row in rows:
                copy.write_row(row)
    most = max(held.get(name, 0) + count for name, count in added.items())
    conn.execute(
        "UPDATE gallery_collections SET subjects = subjects + %s, faces = faces + %s,"
        " most_subject_faces = greatest(most_subject_faces, %s) WHERE id = %s",
        (len(plan.new_subjects), len(plan.new_faces), most, target.id),
    )
