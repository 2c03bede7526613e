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
    "text",
)  # then the vector's
_INSERT_COLUMNS = (
    "collection_id, face_id, external_id, source_digest, x1, y1, x2, y2, confidence, created_at,"
    " landmarks, quality, photo_id, embedding"
)


def add_faces(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    collection: str,
    faces: Sequence[FaceRecord],
    limits: GalleryLimits,
    vector_oid: int,
    opened: dict[str, str] | None = None,
) -> list[tuple[FaceRecord, bool]]:
    """Each face as `add_face` answers it; raises (and writes nothing) when one would pass a limit.
    `opened` (photo id -> source digest): the photos this transaction created before (an import's
    earlier chunks), which take more faces; the photos this call creates are added to it."""
    opened = {} if opened is None else opened
    records = [checks.stored(face, target.dimension) for face in faces]
    labelled = [face for face in records if face.external_id is not None]
    names = sorted({face.external_id for face in labelled if face.external_id is not None})
    held: dict[str, int] = dict(
        conn.execute(
            "SELECT external_id, faces FROM gallery_subjects WHERE collection_id = %s AND external_id = ANY(%s)",
            (target.id, names),
        ).fetchall()
    )
    photo_ids = sorted({face.photo_id for face in records if face.photo_id is not None})
    found: dict[str, str] = {}
    if photo_ids:
        found = dict(
            conn.execute(
                "SELECT photo_id, source_digest FROM gallery_photos WHERE collection_id = %s AND photo_id = ANY(%s)",
                (target.id, photo_ids),
            ).fetchall()
        )
    before = {photo_id: digest for photo_id, digest in found.items() if photo_id not in opened}
    by_source = _faces_by_source(conn, target, labelled) if labelled else {}
    state = StoredState(target.subjects, target.faces, held, by_source, before, dict(opened))
    plan = plan_additions(collection, records, limits, state)
    if plan.new_faces:
        _write(conn, target, plan, held, vector_oid)
    for first in plan.new_photos:
        assert first.photo_id is not None
        opened[first.photo_id] = first.source_digest
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
    return {(face.external_id or "", face.source_digest): face for face in found}


def _write(
    conn: psycopg.Connection[TupleRow], target: Target, plan: Additions, held: dict[str, int], vector_oid: int
) -> None:
    """The plan's subjects, photos and faces, and the counts the collection's row keeps."""
    added = Counter(face.external_id for face in plan.new_faces if face.external_id is not None)
    conn.cursor().executemany(
        "INSERT INTO gallery_subjects (collection_id, external_id, created_at, faces) VALUES (%s, %s, %s, %s)",
        [
            (target.id, first.external_id, first.created_at, added[first.external_id or ""])
            for first in plan.new_subjects
        ],
    )
    conn.cursor().executemany(
        "UPDATE gallery_subjects SET faces = faces + %s WHERE collection_id = %s AND external_id = %s",
        [(count, target.id, name) for name, count in added.items() if name in held],
    )
    pictured = Counter(face.photo_id for face in plan.new_faces if face.photo_id is not None)
    new_photos = {first.photo_id for first in plan.new_photos}
    conn.cursor().executemany(
        "INSERT INTO gallery_photos (collection_id, photo_id, source_digest, created_at, faces)"
        " VALUES (%s, %s, %s, %s, 0)",
        [(target.id, first.photo_id, first.source_digest, first.created_at) for first in plan.new_photos],
    )
    conn.cursor().executemany(
        "UPDATE gallery_photos SET faces = faces + %s WHERE collection_id = %s AND photo_id = %s",
        [(count, target.id, photo_id) for photo_id, count in pictured.items()],
    )
    insert_faces(conn, target, plan.new_faces, vector_oid)
    most = max((held.get(name, 0) + count for name, count in added.items()), default=0)
    conn.execute(
        "UPDATE gallery_collections SET subjects = subjects + %s, faces = faces + %s, photos = photos + %s,"
        " most_subject_faces = greatest(most_subject_faces, %s) WHERE id = %s",
        (len(plan.new_subjects), len(plan.new_faces), len(new_photos), most, target.id),
    )


def insert_faces(
    conn: psycopg.Connection[TupleRow], target: Target, faces: Sequence[FaceRecord], vector_oid: int
) -> None:
    """Face rows (their subjects and photos exist), with COPY from COPY_FROM faces on."""
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
            face.photo_id,
            PgVector(face.embedding),
        )
        for face in faces
    ]
    if len(rows) < COPY_FROM:
        conn.cursor().executemany(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                target.table, sql.SQL(_INSERT_COLUMNS), sql.SQL(", ").join([sql.Placeholder()] * 14)
            ),
            rows,
        )
    else:
        copy_faces = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target.table, sql.SQL(_INSERT_COLUMNS))
        with conn.cursor().copy(copy_faces) as copy:
            copy.set_types([*_COPY_TYPES, vector_oid])
            for row in rows:
                copy.write_row(row)
