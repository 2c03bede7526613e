"""A gallery in PostgreSQL with pgvector: several service replicas can share it.

- Faces live in `gallery_faces`, LIST-partitioned by collection: each collection is its own table
  (`gallery_faces_<id>`) with its own HNSW index, so a small collection in a large table is searched
  on its own vectors only (no filter after an approximate scan of everyone's). The column is a plain
  `vector`; the index is on `embedding::vector(<dimension>)`, the collection's dimension.
- Search is exact (a scan, best face per subject in SQL) below `exact_below` faces, else HNSW
  (`hnsw.ef_search`, iterative scan in relaxed order) over the `top_k * m` nearest faces (m: the
  most faces a subject of the collection has had), grouped per subject here. Similarity is
  1 - cosine distance.
- Rows stay whole in their pages (`toast_tuple_target`, `STORAGE MAIN`): a scan reads each vector
  where it is, not through the TOAST table.
- Limits hold across replicas: every write to a collection first locks its row (`FOR UPDATE`), and a
  unique index on (collection, external id, source digest) backs the one-face-per-source rule.
- Nothing is cached here: every call reads the database, so replicas see each other's writes.
- A delete is a DELETE (or, for a collection, a DROP TABLE of its partition): no query finds the face
  afterwards. Its bytes stay in dead tuples until VACUUM (autovacuum) reclaims them.
- Vectors travel in pgvector's binary format through the small codec below.
- A collection row no write could have stored (edited by hand, an older release) is quarantined
  wherever it is read: left out of `collections`, reported by `health`, logged at open, answered
  `CollectionUnavailable`; the others are served. Errors name no host, socket or user: the log does.
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.rows import TupleRow

from adapters.stores import checks
from domain.additions import Additions, StoredState, check_new_collection, plan_additions
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    CollectionUnavailable,
    FaceNotFound,
    StoreUnavailable,
    SubjectNotFound,
)
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
    GalleryLimits,
    ImportOutcome,
    QuarantinedCollection,
    SearchOutcome,
    StoreHealth,
    SubjectHit,
    SubjectInfo,
    collection_problem,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MIGRATION_LOCK = 0x6661636567616C31  # pg_advisory_lock key: schema changes, one replica at a time
COLLECTIONS_LOCK = 0x6661636567616C32  # pg_advisory_xact_lock key: creating collections (their limit)
HNSW_MAX_DIMENSION = 2000  # pgvector's limit for an HNSW index on `vector`; larger collections scan
EXPORT_PAGE = 512
COPY_FROM = 64  # faces added at once from which COPY beats INSERT
IMPORT_CHUNK = 512  # faces checked and written together by an import

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
)

_COPY_TYPES = ("int8", "text", "text", "text", "float8", "float8", "float8", "float8", "float8", "timestamptz")
_INSERT_COLUMNS = (
    "collection_id, face_id, external_id, source_digest, x1, y1, x2, y2, confidence, created_at, embedding"
)
_FACE_COLUMNS = "face_id, external_id, embedding, x1, y1, x2, y2, confidence, source_digest, created_at"
# A collection's row as `_checked` reads it: its values, and whether its partition exists.
_COLLECTION = (
    "SELECT id, name, model_id, dimension, threshold, created_at, subjects, faces, most_subject_faces,"
    " to_regclass('gallery_faces_' || id) IS NOT NULL FROM gallery_collections"
)


# --- the vector codec: pgvector's binary format is uint16 dimension, uint16 zero, big-endian float32s


class PgVector:
    """A float32 vector to send as a pgvector `vector` parameter (the dumper below is registered for it)."""

    __slots__ = ("values",)

    def __init__(self, values: npt.NDArray[np.float32]) -> None:
        self.values = values


class _VectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: PgVector) -> Buffer:
        values = np.asarray(obj.values, dtype=">f4").reshape(-1)
        return struct.pack(">HH", values.shape[0], 0) + values.tobytes()


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> npt.NDArray[np.float32]:
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


class _VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> npt.NDArray[np.float32]:
        text = bytes(data).decode()
        return np.array(text[1:-1].split(","), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class _Collection:
    id: int
    dimension: int
    subjects: int
    faces: int
    most_subject_faces: int

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(f"gallery_faces_{self.id}")


class PostgresGallery:
    """The FaceGallery port on PostgreSQL + pgvector, through a pool of `pool_size` connections."""

    def __init__(
        self,
        url: str,
        limits: GalleryLimits,
        pool_size: int = 4,
        exact_below: int = 10_000,
        ef_search: int = 100,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._limits = limits
        self._exact_below = exact_below
        self._ef_search = ef_search
        self._hnsw = (hnsw_m, hnsw_ef_construction)
        self._timeout = timeout
        self._vector_oid = 0
        self._iterative_scan = False
        self.migrate()
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(2, round(timeout))},
            configure=self._configure,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=timeout,
            name="face-gallery",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            logger.error("the PostgreSQL gallery cannot be reached: %s", exc)
            raise StoreUnavailable("the PostgreSQL gallery cannot be reached") from exc
        self._answered = True  # the last health check's outcome: a failure is logged when it starts
        for broken in self.health().quarantined:
            logger.error("PostgreSQL gallery: collection %r is quarantined, not served: %s", broken.name, broken.reason)

    @property
    def kind(self) -> str:
        return "postgresql"

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent); replicas starting together take turns (advisory lock)."""
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=max(2, round(self._timeout))) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
                try:
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
                    oid = conn.execute("SELECT 'vector'::regtype::oid::bigint").fetchone()
                    extension = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        except psycopg.OperationalError as exc:
            # psycopg's message names the host, port or socket and the user: for the log only
            logger.error("the PostgreSQL gallery cannot be reached: %s", exc)
            raise StoreUnavailable("the PostgreSQL gallery cannot be reached") from exc
        assert oid is not None and extension is not None
        self._vector_oid = int(oid[0])
        self._iterative_scan = _version(str(extension[0])) >= (0, 8)  # hnsw.iterative_scan came in 0.8

    # --- collections

    def create_collection(self, name: str, model_id: str, dimension: int, threshold: float) -> CollectionInfo:
        checks.collection(name, model_id, dimension, threshold)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (COLLECTIONS_LOCK,))
            if conn.execute("SELECT 1 FROM gallery_collections WHERE name = %s", (name,)).fetchone():
                self._find(conn, name)  # CollectionUnavailable when it is quarantined
                raise CollectionExists(f"collection {name!r} already exists")
            target, created_at = self._insert_collection(conn, name, model_id, dimension, threshold)
            if dimension <= HNSW_MAX_DIMENSION:
                conn.execute(self._index_ddl(target))
            return CollectionInfo(name, model_id, dimension, threshold, created_at, 0, 0)

    def _insert_collection(
        self, conn: psycopg.Connection[TupleRow], name: str, model_id: str, dimension: int, threshold: float
    ) -> tuple[_Collection, datetime]:
        """The collection's row and partition, without its index, inside the caller's transaction (which
        holds COLLECTIONS_LOCK)."""
        count = conn.execute("SELECT count(*) FROM gallery_collections").fetchone()
        check_new_collection(self._limits, int(count[0]) if count else 0)
        row = conn.execute(
            "INSERT INTO gallery_collections (name, model_id, dimension, threshold, created_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id, created_at",
            (name, model_id, dimension, threshold, checks.now()),
        ).fetchone()
        assert row is not None
        target = _Collection(int(row[0]), dimension, 0, 0, 0)
        # toast_tuple_target: a face's row (2.2 KiB at 512-D) stays whole in its page; by default
        # PostgreSQL would move its small text values to the TOAST table to get under 2 KiB.
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF gallery_faces FOR VALUES IN ({}) WITH (toast_tuple_target = 8160)"
            ).format(target.table, sql.Literal(target.id))
        )
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE MAIN").format(target.table))
        return target, row[1]

    def collection(self, name: str) -> CollectionInfo:
        with self._connection() as conn:
            row = conn.execute(_COLLECTION + " WHERE name = %s", (name,)).fetchone()
        return _info(_checked(row, name))

    def collections(self) -> list[CollectionInfo]:
        """The collections served (a quarantined one is in `health`)."""
        with self._connection() as conn:
            rows = conn.execute(_COLLECTION + " ORDER BY name").fetchall()
        return [_info(row) for row in rows if _problem(row) is None]

    def delete_collection(self, name: str) -> None:
        """Also a quarantined one: an operator's way out."""
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM gallery_collections WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"gallery_faces_{int(row[0])}")))
            conn.execute("DELETE FROM gallery_collections WHERE id = %s", (row[0],))

    # --- faces

    def add_face(self, collection: str, face: FaceRecord) -> tuple[FaceRecord, bool]:
        return self.add_faces(collection, [face])[0]

    def add_faces(self, collection: str, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        """`add_face` for many faces in one transaction (imports, the benchmark): all are stored, or,
        when a limit would be exceeded, none. Faces are written with COPY."""
        with self._transaction() as conn:
            return self._add_in(conn, self._locked(conn, collection), collection, faces)

    def import_collection(
        self, name: str, model_id: str, dimension: int, threshold: float, faces: Iterable[FaceRecord]
    ) -> ImportOutcome:
        """One transaction for the collection and every face: an error or a crash part-way leaves
        nothing. A collection the import creates gets its HNSW index after its faces (built at once,
        faster than face by face). Meanwhile other writes to this collection, and the creation of
        other collections, wait for it."""
        checks.collection(name, model_id, dimension, threshold)
        with self._transaction() as conn:
            row = conn.execute(_COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:  # take the creation lock, then look again: another replica may have won
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (COLLECTIONS_LOCK,))
                row = conn.execute(_COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
            created = row is None
            if row is None:
                target, _ = self._insert_collection(conn, name, model_id, dimension, threshold)
            else:
                _checked(row, name)
                if (row[2], row[3]) != (model_id, dimension):
                    raise CollectionModelMismatch(f"collection {name!r} holds vectors of {row[2]}")
            added = duplicates = 0
            records = iter(faces)
            while chunk := list(itertools.islice(records, IMPORT_CHUNK)):
                target = self._locked(conn, name)  # with the counts this transaction has changed
                results = self._add_in(conn, target, name, chunk)
                fresh = sum(1 for _, duplicate in results if not duplicate)
                added, duplicates = added + fresh, duplicates + len(results) - fresh
            if created and dimension <= HNSW_MAX_DIMENSION:
                conn.execute(self._index_ddl(self._locked(conn, name)))
        return ImportOutcome(created, added, duplicates)

    def _add_in(
        self, conn: psycopg.Connection[TupleRow], target: _Collection, collection: str, faces: Sequence[FaceRecord]
    ) -> list[tuple[FaceRecord, bool]]:
        """Decide `faces` by the add-faces rule and write what it answers, inside the caller's
        transaction, which holds the collection's row lock."""
        records = [checks.stored(face, target.dimension) for face in faces]
        names = sorted({face.external_id for face in records})
        held: dict[str, int] = dict(
            conn.execute(
                "SELECT external_id, faces FROM gallery_subjects WHERE collection_id = %s AND external_id = ANY(%s)",
                (target.id, names),
            ).fetchall()
        )
        state = StoredState(target.subjects, target.faces, held, self._faces_by_source(conn, target, records))
        plan = plan_additions(collection, records, self._limits, state)
        if plan.new_faces:
            self._write(conn, target, plan, held)
        return plan.results

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        with self._connection() as conn:
            target = self._find(conn, collection)
            if after is None:
                rows = conn.execute(
                    "SELECT external_id, faces, created_at FROM gallery_subjects"
                    " WHERE collection_id = %s ORDER BY external_id LIMIT %s",
                    (target.id, max(0, limit)),
                ).fetchall()
            else:  # a range on the primary key (collection_id, external_id)
                rows = conn.execute(
                    "SELECT external_id, faces, created_at FROM gallery_subjects"
                    " WHERE collection_id = %s AND external_id > %s ORDER BY external_id LIMIT %s",
                    (target.id, after, max(0, limit)),
                ).fetchall()
        return [SubjectInfo(external_id=row[0], faces=row[1], created_at=row[2]) for row in rows]

    def subject(self, collection: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        with self._connection() as conn:
            target = self._find(conn, collection)
            row = conn.execute(
                "SELECT faces, created_at FROM gallery_subjects WHERE collection_id = %s AND external_id = %s",
                (target.id, external_id),
            ).fetchone()
            if row is None:
                raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
            cursor = conn.cursor(binary=True)
            faces = cursor.execute(
                sql.SQL("SELECT {} FROM {} WHERE external_id = %s ORDER BY created_at, seq").format(
                    sql.SQL(_FACE_COLUMNS), target.table
                ),
                (external_id,),
            ).fetchall()
        return SubjectInfo(external_id, len(faces), row[1]), [_record(face) for face in faces]

    def delete_subject(self, collection: str, external_id: str) -> int:
        with self._transaction() as conn:
            target = self._locked(conn, collection)
            removed = conn.execute(
                sql.SQL("DELETE FROM {} WHERE external_id = %s").format(target.table), (external_id,)
            ).rowcount
            subject = conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND external_id = %s RETURNING 1",
                (target.id, external_id),
            ).fetchone()
            if subject is None:
                raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - 1, faces = faces - %s WHERE id = %s",
                (removed, target.id),
            )
            return removed

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._transaction() as conn:
            target = self._locked(conn, collection)
            row = (
                conn.cursor(binary=True)
                .execute(
                    sql.SQL("DELETE FROM {} WHERE face_id = %s RETURNING {}").format(
                        target.table, sql.SQL(_FACE_COLUMNS)
                    ),
                    (face_id,),
                )
                .fetchone()
            )
            if row is None:
                raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
            face = _record(row)
            left = conn.execute(
                "UPDATE gallery_subjects SET faces = faces - 1 WHERE collection_id = %s AND external_id = %s"
                " RETURNING faces",
                (target.id, face.external_id),
            ).fetchone()
            gone = left is not None and left[0] <= 0
            if gone:
                conn.execute(
                    "DELETE FROM gallery_subjects WHERE collection_id = %s AND external_id = %s",
                    (target.id, face.external_id),
                )
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - %s, faces = faces - 1 WHERE id = %s",
                (int(gone), target.id),
            )
            return face

    # --- search and export

    def search(
        self, collection: str, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> SearchOutcome:
        with self._transaction() as conn:
            target = self._find(conn, collection)
            matrix = checks.probes(probes, target.dimension, top_k)
            if external_id is not None:
                row = conn.execute(
                    "SELECT faces FROM gallery_subjects WHERE collection_id = %s AND external_id = %s",
                    (target.id, external_id),
                ).fetchone()
                if row is None:
                    raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
                hits = [self._exact(conn, target, probe, top_k, external_id) for probe in matrix]
                return SearchOutcome(hits=hits, method="exact", searched=int(row[0]))
            if target.faces < self._exact_below or target.dimension > HNSW_MAX_DIMENSION:
                hits = [self._exact(conn, target, probe, top_k, None) for probe in matrix]
                return SearchOutcome(hits=hits, method="exact", searched=target.faces)
            # The k-th best subject's best face is among the top_k * (most faces of a subject) nearest.
            wanted = min(target.faces, top_k * max(1, target.most_subject_faces))
            # An iterative scan goes on past ef_search until it has `wanted` rows; without one (pgvector
            # before 0.8) ef_search bounds the rows, so it must cover them (1000 at most).
            ef_search = self._ef_search if self._iterative_scan else min(1000, max(self._ef_search, wanted))
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
            # "approximate" means the index: not a scan the planner may prefer on stale statistics.
            conn.execute("SELECT set_config('enable_seqscan', 'off', true)")
            if self._iterative_scan:
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            hits = [self._approximate(conn, target, probe, top_k, wanted) for probe in matrix]
            return SearchOutcome(hits=hits, method="approximate", searched=target.faces)

    def faces(self, collection: str) -> Iterator[FaceRecord]:
        with self._connection() as conn:
            target = self._find(conn, collection)
        return self._export(target)

    def _export(self, target: _Collection) -> Iterator[FaceRecord]:
        after = -1
        query = sql.SQL("SELECT seq, {} FROM {} WHERE seq > %s ORDER BY seq LIMIT %s").format(
            sql.SQL(_FACE_COLUMNS), target.table
        )
        while True:
            try:
                with self._connection() as conn:
                    rows = conn.cursor(binary=True).execute(query, (after, EXPORT_PAGE)).fetchall()
            except CollectionNotFound:
                return  # deleted meanwhile
            if not rows:
                return
            after = rows[-1][0]
            for row in rows:
                yield _record(row[1:])

    # --- bulk imports (not in the port)

    def drop_index(self, collection: str) -> None:
        """Drop the collection's HNSW index before a large import (each face added then skips the graph
        update); searches meanwhile scan exactly. `build_index` puts it back, much faster than the
        inserts would have: pgvector builds a graph in memory, in parallel workers."""
        with self._transaction() as conn:
            target = self._locked(conn, collection)
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(_index_name(target)))

    def build_index(self, collection: str, maintenance_work_mem: str | None = None) -> None:
        """Build the collection's HNSW index if it has none. Writes to the collection wait meanwhile;
        searches go on. `maintenance_work_mem` (for example "4GB") should hold the whole graph."""
        with self._transaction() as conn:
            target = self._locked(conn, collection)
            if maintenance_work_mem is not None:
                conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
            if target.dimension <= HNSW_MAX_DIMENSION:
                conn.execute(self._index_ddl(target))

    # --- the store

    def health(self) -> StoreHealth:
        try:
            with self._pool.connection(timeout=min(2.0, self._timeout)) as conn, conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 2000")
                rows = conn.execute(_COLLECTION + " ORDER BY name").fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            if self._answered:
                logger.error("PostgreSQL gallery: the database does not answer: %s", exc)
            self._answered = False
            return StoreHealth(store="postgresql", ok=False, detail="PostgreSQL does not answer")
        self._answered = True
        quarantined = tuple(
            QuarantinedCollection(row[1] if isinstance(row[1], str) else repr(row[1]), problem)
            for row in rows
            if (problem := _problem(row)) is not None
        )
        return StoreHealth("postgresql", True, "PostgreSQL answers", quarantined)

    def close(self) -> None:
        self._pool.close()

    # --- inside

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each new connection: the vector codec, UTC timestamps."""
        dumper = type("VectorDumper", (_VectorDumper,), {"oid": self._vector_oid})
        conn.adapters.register_dumper(PgVector, dumper)
        conn.adapters.register_loader(self._vector_oid, _VectorBinaryLoader)
        conn.adapters.register_loader(self._vector_oid, _VectorTextLoader)
        conn.execute("SET TIME ZONE 'UTC'")

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.UndefinedTable as exc:  # its partition was dropped after we looked it up
            raise CollectionNotFound("the collection was deleted meanwhile") from exc
        except psycopg.DataError as exc:  # a row written behind our back: a vector of another dimension...
            logger.error("PostgreSQL gallery: a stored row cannot be used: %s", exc)
            raise CollectionUnavailable("the collection holds a row the database cannot use") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg.InternalError) as exc:
            # The server's message may name a host, socket, role or file: for the log only.
            logger.error("the PostgreSQL gallery failed: %s", exc)
            raise StoreUnavailable(f"the PostgreSQL gallery failed ({type(exc).__name__})") from exc
        except (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            logger.error("the PostgreSQL gallery cannot be reached: %s", exc)
            raise StoreUnavailable("the PostgreSQL gallery cannot be reached") from exc

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _index_ddl(self, target: _Collection) -> sql.Composed:
        m, ef_construction = self._hnsw
        return sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ((embedding::vector({})) vector_cosine_ops)"
            " WITH (m = {}, ef_construction = {})"
        ).format(
            _index_name(target),
            target.table,
            sql.Literal(target.dimension),
            sql.Literal(m),
            sql.Literal(ef_construction),
        )

    @staticmethod
    def _find(conn: psycopg.Connection[TupleRow], name: str) -> _Collection:
        return _target(_checked(conn.execute(_COLLECTION + " WHERE name = %s", (name,)).fetchone(), name))

    @staticmethod
    def _locked(conn: psycopg.Connection[TupleRow], name: str) -> _Collection:
        """The collection, its row locked until the transaction ends: one writer per collection at a time."""
        row = conn.execute(_COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
        return _target(_checked(row, name))

    @staticmethod
    def _faces_by_source(
        conn: psycopg.Connection[TupleRow], target: _Collection, faces: Sequence[FaceRecord]
    ) -> dict[tuple[str, str], FaceRecord]:
        """The stored faces with the (external id, source digest) of any of `faces` (the unique index)."""
        cursor = conn.cursor(binary=True)
        if len(faces) == 1:
            query = sql.SQL("SELECT {} FROM {} WHERE external_id = %s AND source_digest = %s").format(
                sql.SQL(_FACE_COLUMNS), target.table
            )
            cursor.execute(query, (faces[0].external_id, faces[0].source_digest))
        else:
            query = sql.SQL(
                "SELECT {} FROM {} AS f JOIN unnest(%s::text[], %s::text[]) AS wanted (external_id, source_digest)"
                " ON f.external_id = wanted.external_id AND f.source_digest = wanted.source_digest"
            ).format(sql.SQL(", ".join(f"f.{column}" for column in _FACE_COLUMNS.split(", "))), target.table)
            cursor.execute(query, ([face.external_id for face in faces], [face.source_digest for face in faces]))
        found = [_record(row) for row in cursor.fetchall()]
        return {(face.external_id, face.source_digest): face for face in found}

    def _write(
        self, conn: psycopg.Connection[TupleRow], target: _Collection, plan: Additions, held: dict[str, int]
    ) -> None:
        """Store the plan's subjects and faces, and the counts the collection's row keeps."""
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
                PgVector(face.embedding),
            )
            for face in plan.new_faces
        ]
        if len(rows) < COPY_FROM:
            conn.cursor().executemany(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    target.table, sql.SQL(_INSERT_COLUMNS), sql.SQL(", ").join([sql.Placeholder()] * 11)
                ),
                rows,
            )
        else:
            copy_faces = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                target.table, sql.SQL(_INSERT_COLUMNS)
            )
            with conn.cursor().copy(copy_faces) as copy:
                copy.set_types([*_COPY_TYPES, self._vector_oid])
                for row in rows:
                    copy.write_row(row)
        most = max(held.get(name, 0) + count for name, count in added.items())
        conn.execute(
            "UPDATE gallery_collections SET subjects = subjects + %s, faces = faces + %s,"
            " most_subject_faces = greatest(most_subject_faces, %s) WHERE id = %s",
            (len(plan.new_subjects), len(plan.new_faces), most, target.id),
        )

    @staticmethod
    def _exact(
        conn: psycopg.Connection[TupleRow],
        target: _Collection,
        probe: npt.NDArray[np.float32],
        top_k: int,
        external_id: str | None,
    ) -> list[SubjectHit]:
        """Every face's distance, the best per subject, the best `top_k` subjects: all in one scan."""
        where, values = (
            (sql.SQL(""), ()) if external_id is None else (sql.SQL("WHERE external_id = %s"), (external_id,))
        )
        rows = conn.execute(
            sql.SQL(
                "SELECT external_id, face_id, distance FROM ("
                " SELECT DISTINCT ON (external_id) external_id, face_id, embedding <=> %s AS distance FROM {} {}"
                " ORDER BY external_id, distance, seq"
                ") best ORDER BY distance, external_id LIMIT %s"
            ).format(target.table, where),
            (PgVector(probe), *values, top_k),
        ).fetchall()
        return [SubjectHit(external_id=row[0], face_id=row[1], similarity=1.0 - float(row[2])) for row in rows]

    @staticmethod
    def _approximate(
        conn: psycopg.Connection[TupleRow],
        target: _Collection,
        probe: npt.NDArray[np.float32],
        top_k: int,
        wanted: int,
    ) -> list[SubjectHit]:
        """The `wanted` nearest faces by the HNSW index, then the best face per subject, `top_k` of them."""
        rows = conn.execute(
            sql.SQL(
                "SELECT external_id, face_id, (embedding::vector({})) <=> %s AS distance FROM {}"
                " ORDER BY distance LIMIT %s"
            ).format(sql.Literal(target.dimension), target.table),
            (PgVector(probe), wanted),
        ).fetchall()
        best: dict[str, SubjectHit] = {}
        for external_id, face_id, distance in sorted(rows, key=lambda row: row[2]):
            if external_id not in best:
                best[external_id] = SubjectHit(external_id, face_id, 1.0 - float(distance))
                if len(best) == top_k:
                    break
        return list(best.values())


def _index_name(target: _Collection) -> sql.Identifier:
    return sql.Identifier(f"gallery_faces_{target.id}_hnsw")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _problem(row: Sequence[Any]) -> str | None:
    """What makes a collection row (as `_COLLECTION` reads it) unservable, or None."""
    _, name, model_id, dimension, threshold, _, subjects, faces, most, partition = row
    problem = collection_problem(name, model_id, dimension, threshold)
    if problem is None and min(subjects, faces, most) < 0:
        problem = "its subject or face counts are negative"
    if problem is None and not partition:
        problem = "its faces' table is missing"
    return problem


def _checked(row: Sequence[Any] | None, name: str) -> Sequence[Any]:
    if row is None:
        raise CollectionNotFound(f"collection {name!r} does not exist")
    problem = _problem(row)
    if problem is not None:
        raise CollectionUnavailable(
            f"collection {name!r} is quarantined: {problem}; it is not served until an operator deletes or repairs it"
        )
    return row


def _info(row: Sequence[Any]) -> CollectionInfo:
    _, name, model_id, dimension, threshold, created_at, subjects, faces, _, _ = row
    return CollectionInfo(name, model_id, dimension, threshold, created_at, int(subjects), int(faces))


def _target(row: Sequence[Any]) -> _Collection:
    return _Collection(int(row[0]), int(row[3]), int(row[6]), int(row[7]), int(row[8]))


def _record(row: Sequence[Any]) -> FaceRecord:
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
