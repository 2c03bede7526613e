"""The PostgreSQL gallery's tables: the migrations (run under an advisory lock, so replicas starting
together take turns) and the DDL of each collection's partition and HNSW index."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from domain.errors import StoreUnavailable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 6
MIGRATION_LOCK = 0x6661636567616C31  # pg_advisory_lock key: schema changes, one replica at a time
HNSW_MAX_DIMENSION = 2000  # pgvector's limit for an HNSW index on `vector`; larger collections scan

# Each entry takes the schema from version i to i + 1 (table gallery_schema).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE gallery_collections (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text COLLATE "C" NOT NULL UNIQUE,
            model_id text NOT NULL,
            dimension integer NOT NULL CHECK (dimension > 0),
            threshold double precision NOT NULL,
            created_at timestamptz NOT NULL,
            subjects integer NOT NULL DEFAULT 0,
            faces bigint NOT NULL DEFAULT 0,
            -- the most faces a subject has had: how many nearest faces an approximate search groups
            most_subject_faces integer NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE gallery_subjects (
            collection_id bigint NOT NULL REFERENCES gallery_collections (id) ON DELETE CASCADE,
            external_id text COLLATE "C" NOT NULL,
            created_at timestamptz NOT NULL,
            faces integer NOT NULL,
            PRIMARY KEY (collection_id, external_id)
        )""",
        "CREATE SEQUENCE gallery_faces_seq AS bigint",
        """CREATE TABLE gallery_faces (
            collection_id bigint NOT NULL,
            seq bigint NOT NULL DEFAULT nextval('gallery_faces_seq'),
            face_id text NOT NULL,
            external_id text COLLATE "C" NOT NULL,
            source_digest text NOT NULL,
            x1 double precision, y1 double precision, x2 double precision, y2 double precision,
            confidence double precision,
            created_at timestamptz NOT NULL,
            embedding vector NOT NULL,
            PRIMARY KEY (collection_id, seq),
            UNIQUE (collection_id, face_id),
            UNIQUE (collection_id, external_id, source_digest),
            FOREIGN KEY (collection_id, external_id)
                REFERENCES gallery_subjects (collection_id, external_id) ON DELETE CASCADE
        ) PARTITION BY LIST (collection_id)""",
        # Vectors inline in the row (2 KiB for 512-D), not moved to the TOAST table: an exact scan
        # would otherwise fetch every one of them through the TOAST index.
        "ALTER TABLE gallery_faces ALTER COLUMN embedding SET STORAGE MAIN",
    ),
    # 2: each face keeps its landmarks and quality (JSON text, as SQLite: face_rows.py); faces stored
    # before have NULL. Added to the parent, so every partition gets them.
    (
        "ALTER TABLE gallery_faces ADD COLUMN landmarks text",
        "ALTER TABLE gallery_faces ADD COLUMN quality text",
    ),
    # 3: photos. A face belongs to a subject, a photo, or both; each photo's row counts its faces and
    # the collection's its photos (as for subjects). Faces of a photo are found by a partial index.
    (
        """CREATE TABLE gallery_photos (
            collection_id bigint NOT NULL REFERENCES gallery_collections (id) ON DELETE CASCADE,
            photo_id text COLLATE "C" NOT NULL,
            source_digest text NOT NULL,
            created_at timestamptz NOT NULL,
            faces integer NOT NULL,
            PRIMARY KEY (collection_id, photo_id)
        )""",
        "ALTER TABLE gallery_collections ADD COLUMN photos integer NOT NULL DEFAULT 0",
        "ALTER TABLE gallery_faces ALTER COLUMN external_id DROP NOT NULL",
        'ALTER TABLE gallery_faces ADD COLUMN photo_id text COLLATE "C"',
        """ALTER TABLE gallery_faces ADD CONSTRAINT gallery_faces_photo FOREIGN KEY (collection_id, photo_id)
            REFERENCES gallery_photos (collection_id, photo_id) ON DELETE CASCADE""",
        """ALTER TABLE gallery_faces ADD CONSTRAINT gallery_faces_owner
            CHECK (external_id IS NOT NULL OR photo_id IS NOT NULL)""",
        "CREATE INDEX gallery_faces_by_photo ON gallery_faces (collection_id, photo_id) WHERE photo_id IS NOT NULL",
    ),
    # 4: people (domain/people.py): each face in at most one person, and the corrections ("not this
    # person") as pairs of faces, smaller id first. No foreign key to the partitioned faces table (its
    # partitions are dropped with their collection): a face's delete takes it out of both by a trigger,
    # a collection's delete by the cascade from gallery_collections, and a second trigger drops a
    # person left with no face, whichever way its last face left. Writes hold the collection's row lock.
    (
        """CREATE TABLE gallery_people (
            collection_id bigint NOT NULL REFERENCES gallery_collections (id) ON DELETE CASCADE,
            person_id text COLLATE "C" NOT NULL,
            created_at timestamptz NOT NULL,
            PRIMARY KEY (collection_id, person_id)
        )""",
        """CREATE TABLE gallery_person_faces (
            collection_id bigint NOT NULL,
            face_id text COLLATE "C" NOT NULL,
            person_id text COLLATE "C" NOT NULL,
            PRIMARY KEY (collection_id, face_id),
            FOREIGN KEY (collection_id, person_id)
                REFERENCES gallery_people (collection_id, person_id) ON DELETE CASCADE
        )""",
        "CREATE INDEX gallery_person_faces_by_person ON gallery_person_faces (collection_id, person_id)",
        """CREATE TABLE gallery_person_refusals (
            collection_id bigint NOT NULL REFERENCES gallery_collections (id) ON DELETE CASCADE,
            face_id text COLLATE "C" NOT NULL,
            other_id text COLLATE "C" NOT NULL,
            PRIMARY KEY (collection_id, face_id, other_id),
            CHECK (face_id < other_id)
        )""",
        "CREATE INDEX gallery_person_refusals_by_other ON gallery_person_refusals (collection_id, other_id)",
        """CREATE FUNCTION gallery_faces_leave_people() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM gallery_person_faces WHERE collection_id = OLD.collection_id AND face_id = OLD.face_id;
            DELETE FROM gallery_person_refusals WHERE collection_id = OLD.collection_id AND face_id = OLD.face_id;
            DELETE FROM gallery_person_refusals WHERE collection_id = OLD.collection_id AND other_id = OLD.face_id;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER gallery_faces_leave_people AFTER DELETE ON gallery_faces
            FOR EACH ROW EXECUTE FUNCTION gallery_faces_leave_people()""",
        """CREATE FUNCTION gallery_people_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM gallery_people p WHERE p.collection_id = OLD.collection_id AND p.person_id = OLD.person_id
                AND NOT EXISTS (SELECT 1 FROM gallery_person_faces f
                                WHERE f.collection_id = OLD.collection_id AND f.person_id = OLD.person_id);
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER gallery_people_emptied AFTER DELETE OR UPDATE OF person_id ON gallery_person_faces
            FOR EACH ROW EXECUTE FUNCTION gallery_people_emptied()""",
    ),
    # 5: each collection's last re-cluster job (domain/cluster_jobs.py), its outcome once done: the
    # row replicas claim a re-cluster on (one at a time per collection) and read its status from.
    (
        """CREATE TABLE gallery_cluster_jobs (
            collection_id bigint PRIMARY KEY REFERENCES gallery_collections (id) ON DELETE CASCADE,
            job_id text NOT NULL,
            state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            stage text NOT NULL,
            progress double precision NOT NULL CHECK (progress BETWEEN 0 AND 1),
            started_at timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            finished_at timestamptz,
            faces bigint, grouped bigint, people bigint, assigned bigint,
            error text
        )""",
    ),
    # 6: a person a user shaped by hand (a merge, a split) is kept: a re-cluster keeps it whole; each
    # collection's people revision, moved by every correction, so a re-cluster never undoes one that
    # landed while it ran (PeopleStore.people_revision).
    (
        "ALTER TABLE gallery_people ADD COLUMN kept boolean NOT NULL DEFAULT false",
        "ALTER TABLE gallery_collections ADD COLUMN people_revision bigint NOT NULL DEFAULT 0",
    ),
)


@dataclass(frozen=True, slots=True)
class Extension:
    """What the migration learnt of the database's pgvector."""

    vector_oid: int  # the `vector` type's oid, for the codec
    iterative_scan: bool  # hnsw.iterative_scan came in pgvector 0.8


@dataclass(frozen=True, slots=True)
class IndexBuild:
    """HNSW build parameters of the indexes the gallery creates."""

    m: int = 16
    ef_construction: int = 64


def migrate(url: str, timeout: float) -> Extension:
    """Create or upgrade the schema (idempotent)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(2, round(timeout))) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                _upgrade(conn)
                oid = conn.execute("SELECT 'vector'::regtype::oid::bigint").fetchone()
                extension = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    except psycopg.OperationalError as exc:
        # psycopg's message names the host, port or socket and the user: for the log only
        logger.error("the PostgreSQL gallery cannot be reached: %s", exc)
        raise StoreUnavailable("the PostgreSQL gallery cannot be reached") from exc
    assert oid is not None and extension is not None
    return Extension(int(oid[0]), _version(str(extension[0])) >= (0, 8))


def _upgrade(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute("CREATE TABLE IF NOT EXISTS gallery_schema (version integer NOT NULL)")
    row = conn.execute("SELECT max(version) FROM gallery_schema").fetchone()
    version = 0 if row is None or row[0] is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"the PostgreSQL gallery has schema version {version}; this release knows {SCHEMA_VERSION}"
        )
    for step in range(version, SCHEMA_VERSION):
        with conn.transaction():
            for statement in MIGRATIONS[step]:
                conn.execute(statement.encode())
            conn.execute("INSERT INTO gallery_schema (version) VALUES (%s)", (step + 1,))
        logger.info("gallery schema migrated to version %d", step + 1)


def faces_table(collection_id: int) -> sql.Identifier:
    """The collection's partition of gallery_faces."""
    return sql.Identifier(f"gallery_faces_{collection_id}")


def create_partition(conn: psycopg.Connection[Any], collection_id: int) -> None:
    table = faces_table(collection_id)
    # toast_tuple_target: a face's row (2.2 KiB at 512-D) stays whole in its page; by default
    # PostgreSQL would move its small text values to the TOAST table to get under 2 KiB.
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} PARTITION OF gallery_faces FOR VALUES IN ({}) WITH (toast_tuple_target = 8160)"
        ).format(table, sql.Literal(collection_id))
    )
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE MAIN").format(table))


def drop_partition(conn: psycopg.Connection[Any], collection_id: int) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(faces_table(collection_id)))


def create_index(conn: psycopg.Connection[Any], collection_id: int, dimension: int, build: IndexBuild) -> None:
    """The partition's HNSW index on `embedding::vector(dimension)`, if it has none; none past
    HNSW_MAX_DIMENSION (such a collection is always scanned)."""
    if dimension > HNSW_MAX_DIMENSION:
        return
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ((embedding::vector({})) vector_cosine_ops)"
            " WITH (m = {}, ef_construction = {})"
        ).format(
            _index_name(collection_id),
            faces_table(collection_id),
            sql.Literal(dimension),
            sql.Literal(build.m),
            sql.Literal(build.ef_construction),
        )
    )


def drop_index(conn: psycopg.Connection[Any], collection_id: int) -> None:
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(_index_name(collection_id)))


def _index_name(collection_id: int) -> sql.Identifier:
    return sql.Identifier(f"gallery_faces_{collection_id}_hnsw")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())
