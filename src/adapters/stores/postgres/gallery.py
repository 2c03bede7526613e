"""A gallery in PostgreSQL with pgvector: several service replicas can share it.

- Faces live in `gallery_faces`, LIST-partitioned by collection: each collection is its own table
  (`gallery_faces_<id>`) with its own HNSW index (schema.py), so a small collection in a large table
  is searched on its own vectors only (search.py: exact below `exact_below` faces, else HNSW).
- Limits hold across replicas: every write to a collection first locks its row (`FOR UPDATE`), and a
  unique index on (collection, external id, source digest) backs the one-face-per-source rule
  (additions.py applies domain/additions.py's rule inside that transaction).
- Nothing is cached here: every call reads the database, so replicas see each other's writes.
- A delete is a DELETE (or, for a collection, a DROP TABLE of its partition): no query finds the face
  afterwards. Its bytes stay in dead tuples until VACUUM (autovacuum) reclaims them.
- A collection row no write could have stored (edited by hand, an older release) is quarantined
  wherever it is read (rows.py): left out of `collections`, reported by `health`, logged at open,
  answered `CollectionUnavailable`; the others are served. Errors name no host, socket or user: the
  log does.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores import checks
from adapters.stores.face_rows import face_record
from adapters.stores.postgres import people as people_sql
from adapters.stores.postgres import rows, schema, search, vector_codec
from adapters.stores.postgres.additions import add_faces, insert_faces
from domain.additions import check_collection_faces, check_new_collection
from domain.cluster_jobs import ClusterJob
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    CollectionUnavailable,
    FaceNotFound,
    PhotoExists,
    PhotoNotFound,
    StoreUnavailable,
)
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
    GalleryLimits,
    ImportOutcome,
    PersonInfo,
    PhotoCursor,
    PhotoHit,
    PhotoInfo,
    PhotoSearchOutcome,
    QuarantinedCollection,
    SearchOutcome,
    StoreHealth,
    SubjectInfo,
)
from domain.model import Vector

logger = logging.getLogger(__name__)

COLLECTIONS_LOCK = 0x6661636567616C32  # pg_advisory_xact_lock key: creating collections (their limit)
EXPORT_PAGE = 512
IMPORT_CHUNK = 512  # faces checked and written together by an import


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
        self._index = schema.IndexBuild(hnsw_m, hnsw_ef_construction)
        self._timeout = timeout
        extension = self.migrate()
        self._vector_oid = extension.vector_oid
        self._search = search.Search(exact_below, ef_search, extension.iterative_scan)
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

    def migrate(self) -> schema.Extension:
        """Create or upgrade the schema (idempotent); replicas starting together take turns (advisory lock)."""
        return schema.migrate(self._url, self._timeout)

    # --- collections

    def create_collection(self, name: str, model_id: str, dimension: int, threshold: float) -> CollectionInfo:
        checks.collection(name, model_id, dimension, threshold)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (COLLECTIONS_LOCK,))
            if conn.execute("SELECT 1 FROM gallery_collections WHERE name = %s", (name,)).fetchone():
                rows.find(conn, name)  # CollectionUnavailable when it is quarantined
                raise CollectionExists(f"collection {name!r} already exists")
            target, created_at = self._insert_collection(conn, name, model_id, dimension, threshold)
            schema.create_index(conn, target.id, dimension, self._index)
            return CollectionInfo(name, model_id, dimension, threshold, created_at, 0, 0)

    def _insert_collection(
        self, conn: psycopg.Connection[TupleRow], name: str, model_id: str, dimension: int, threshold: float
    ) -> tuple[rows.Target, datetime]:
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
        schema.create_partition(conn, int(row[0]))
        return rows.Target(int(row[0]), dimension, 0, 0, 0), row[1]

    def collection(self, name: str) -> CollectionInfo:
        with self._connection() as conn:
            row = conn.execute(rows.COLLECTION + " WHERE name = %s", (name,)).fetchone()
        return rows.info(rows.checked(row, name))

    def collections(self) -> list[CollectionInfo]:
        """The collections served (a quarantined one is in `health`)."""
        with self._connection() as conn:
            found = conn.execute(rows.COLLECTION + " ORDER BY name").fetchall()
        return [rows.info(row) for row in found if rows.problem(row) is None]

    def delete_collection(self, name: str) -> None:
        """Also a quarantined one: an operator's way out."""
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM gallery_collections WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            schema.drop_partition(conn, int(row[0]))
            conn.execute("DELETE FROM gallery_collections WHERE id = %s", (row[0],))

    # --- faces

    def add_face(self, collection: str, face: FaceRecord) -> tuple[FaceRecord, bool]:
        return self.add_faces(collection, [face])[0]

    def add_faces(self, collection: str, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        """`add_face` for many faces in one transaction (imports, the benchmark): all are stored, or,
        when a limit would be exceeded, none. Faces are written with COPY."""
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            return add_faces(conn, target, collection, faces, self._limits, self._vector_oid)

    def import_collection(
        self, name: str, model_id: str, dimension: int, threshold: float, faces: Iterable[FaceRecord]
    ) -> ImportOutcome:
        """One transaction for the collection and every face: an error or a crash part-way leaves
        nothing. A collection the import creates gets its HNSW index after its faces (built at once,
        faster than face by face). Meanwhile other writes to this collection, and the creation of
        other collections, wait for it."""
        checks.collection(name, model_id, dimension, threshold)
        with self._transaction() as conn:
            row = conn.execute(rows.COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
            if row is None:  # take the creation lock, then look again: another replica may have won
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (COLLECTIONS_LOCK,))
                row = conn.execute(rows.COLLECTION + " WHERE name = %s FOR UPDATE", (name,)).fetchone()
            created = row is None
            if row is None:
                self._insert_collection(conn, name, model_id, dimension, threshold)
            else:
                rows.checked(row, name)
                if (row[2], row[3]) != (model_id, dimension):
                    raise CollectionModelMismatch(f"collection {name!r} holds vectors of {row[2]}")
            added = duplicates = 0
            opened: dict[str, str] = {}  # photos this import created: its later chunks add to them
            records = iter(faces)
            while chunk := list(itertools.islice(records, IMPORT_CHUNK)):
                target = rows.locked(conn, name)  # with the counts this transaction has changed
                results = add_faces(conn, target, name, chunk, self._limits, self._vector_oid, opened)
                fresh = sum(1 for _, duplicate in results if not duplicate)
                added, duplicates = added + fresh, duplicates + len(results) - fresh
            if created:
                schema.create_index(conn, rows.locked(conn, name).id, dimension, self._index)
        return ImportOutcome(created, added, duplicates)

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        with self._connection() as conn:
            target = rows.find(conn, collection)
            if after is None:
                found = conn.execute(
                    "SELECT external_id, faces, created_at FROM gallery_subjects"
                    " WHERE collection_id = %s ORDER BY external_id LIMIT %s",
                    (target.id, max(0, limit)),
                ).fetchall()
            else:  # a range on the primary key (collection_id, external_id)
                found = conn.execute(
                    "SELECT external_id, faces, created_at FROM gallery_subjects"
                    " WHERE collection_id = %s AND external_id > %s ORDER BY external_id LIMIT %s",
                    (target.id, after, max(0, limit)),
                ).fetchall()
        return [SubjectInfo(external_id=row[0], faces=row[1], created_at=row[2]) for row in found]

    def subject(self, collection: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        with self._connection() as conn:
            target = rows.find(conn, collection)
            _, created_at = rows.subject(conn, target, collection, external_id)
            cursor = conn.cursor(binary=True)
            faces = cursor.execute(
                sql.SQL("SELECT {} FROM {} WHERE external_id = %s ORDER BY created_at, seq").format(
                    sql.SQL(rows.FACE_COLUMNS), target.table
                ),
                (external_id,),
            ).fetchall()
        return SubjectInfo(external_id, len(faces), created_at), [face_record(face) for face in faces]

    def delete_subject(self, collection: str, external_id: str) -> int:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            rows.subject(conn, target, collection, external_id)  # SubjectNotFound before anything is deleted
            pictured = conn.execute(
                sql.SQL("DELETE FROM {} WHERE external_id = %s RETURNING photo_id").format(target.table), (external_id,)
            ).fetchall()
            removed = len(pictured)
            _uncount_photo_faces(conn, target, [photo_id for (photo_id,) in pictured if photo_id is not None])
            conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND external_id = %s", (target.id, external_id)
            )
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - 1, faces = faces - %s WHERE id = %s",
                (removed, target.id),
            )
            return removed

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            row = (
                conn.cursor(binary=True)
                .execute(
                    sql.SQL("DELETE FROM {} WHERE face_id = %s RETURNING {}").format(
                        target.table, sql.SQL(rows.FACE_COLUMNS)
                    ),
                    (face_id,),
                )
                .fetchone()
            )
            if row is None:
                raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
            face = face_record(row)
            gone = _uncount_subject_faces(conn, target, [face.external_id] if face.external_id is not None else [])
            _uncount_photo_faces(conn, target, [face.photo_id] if face.photo_id is not None else [])
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - %s, faces = faces - 1 WHERE id = %s",
                (gone, target.id),
            )
            return face

    # --- photos

    def add_photo(
        self, collection: str, photo: PhotoInfo, faces: Sequence[FaceRecord]
    ) -> tuple[PhotoInfo, list[FaceRecord], bool]:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            records = checks.photo_faces(photo, faces, target.dimension)
            try:
                stored = rows.photo(conn, target, collection, photo.photo_id)
            except PhotoNotFound:
                pass
            else:
                if stored.source_digest != photo.source_digest:
                    raise PhotoExists(f"photo {photo.photo_id!r} was indexed from other bytes; delete it first")
                return stored, self._photo_faces(conn, target, photo.photo_id), True
            check_collection_faces(self._limits, collection, target.faces, len(records))
            row = conn.execute(
                "INSERT INTO gallery_photos (collection_id, photo_id, source_digest, created_at, faces)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING created_at",
                (target.id, photo.photo_id, photo.source_digest, photo.created_at, len(records)),
            ).fetchone()
            assert row is not None
            insert_faces(conn, target, records, self._vector_oid)
            conn.execute(
                "UPDATE gallery_collections SET faces = faces + %s, photos = photos + 1 WHERE id = %s",
                (len(records), target.id),
            )
            created_at = row[0]
        return PhotoInfo(photo.photo_id, photo.source_digest, len(records), created_at), records, False

    def photos(self, collection: str, after: str | None, limit: int) -> list[PhotoInfo]:
        with self._connection() as conn:
            target = rows.find(conn, collection)
            found = conn.execute(  # a range on the primary key (collection_id, photo_id)
                "SELECT photo_id, source_digest, faces, created_at FROM gallery_photos"
                " WHERE collection_id = %s AND photo_id > %s ORDER BY photo_id LIMIT %s",
                (target.id, "" if after is None else after, max(0, limit)),
            ).fetchall()
        return [PhotoInfo(row[0], row[1], int(row[2]), row[3]) for row in found]

    def photo(self, collection: str, photo_id: str) -> tuple[PhotoInfo, list[FaceRecord]]:
        with self._connection() as conn:
            target = rows.find(conn, collection)
            info = rows.photo(conn, target, collection, photo_id)
            faces = self._photo_faces(conn, target, photo_id)
        return dataclasses.replace(info, faces=len(faces)), faces

    def delete_photo(self, collection: str, photo_id: str) -> int:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            rows.photo(conn, target, collection, photo_id)  # PhotoNotFound before anything is deleted
            labels = conn.execute(
                sql.SQL("DELETE FROM {} WHERE photo_id = %s RETURNING external_id").format(target.table), (photo_id,)
            ).fetchall()
            conn.execute("DELETE FROM gallery_photos WHERE collection_id = %s AND photo_id = %s", (target.id, photo_id))
            gone = _uncount_subject_faces(conn, target, [name for (name,) in labels if name is not None])
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - %s, faces = faces - %s, photos = photos - 1"
                " WHERE id = %s",
                (gone, len(labels), target.id),
            )
            return len(labels)

    def search_photos(
        self, collection: str, probe: Vector, min_similarity: float, top_k: int, after: PhotoCursor | None
    ) -> PhotoSearchOutcome:
        with self._transaction() as conn:
            target = rows.find(conn, collection)
            matrix = checks.probes(probe, target.dimension, top_k)
            return search.photos(conn, target, self._search, matrix[0], min_similarity, top_k, after)

    def search_photos_many(
        self, collection: str, probes: npt.NDArray[np.float32], min_similarity: float, top_k: int
    ) -> list[list[PhotoHit]]:
        with self._transaction() as conn:
            target = rows.find(conn, collection)
            matrix = checks.probes(probes, target.dimension, top_k)
            return search.photos_many(conn, target, self._search, matrix, min_similarity, top_k)

    @staticmethod
    def _photo_faces(conn: psycopg.Connection[TupleRow], target: rows.Target, photo_id: str) -> list[FaceRecord]:
        found = (
            conn.cursor(binary=True)
            .execute(
                sql.SQL("SELECT {} FROM {} WHERE photo_id = %s ORDER BY seq").format(
                    sql.SQL(rows.FACE_COLUMNS), target.table
                ),
                (photo_id,),
            )
            .fetchall()
        )
        return [face_record(row) for row in found]

    def label_faces(self, collection: str, face_ids: Sequence[str], external_id: str) -> int:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            labelled = people_sql.label_faces(conn, target, collection, face_ids, external_id, self._limits)
            if labelled:
                people_sql.corrected(conn, target)
            return labelled

    # --- people (the PeopleStore port; the statements are people.py's)

    def people(self, collection: str, after: str | None, limit: int) -> list[PersonInfo]:
        with self._transaction() as conn:
            return people_sql.people(conn, rows.find(conn, collection), after, limit)

    def person(self, collection: str, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        with self._transaction() as conn:
            return people_sql.person(conn, rows.find(conn, collection), person_id)

    def memberships(self, collection: str) -> dict[str, str]:
        with self._connection() as conn:
            return people_sql.memberships(conn, rows.find(conn, collection))

    def kept_memberships(self, collection: str) -> dict[str, str]:
        with self._connection() as conn:
            return people_sql.memberships(conn, rows.find(conn, collection), kept_only=True)

    def people_of(self, collection: str, face_ids: Sequence[str]) -> dict[str, str]:
        with self._connection() as conn:
            return people_sql.people_of(conn, rows.find(conn, collection), face_ids)

    def join_people(self, collection: str, joins: Mapping[str, str]) -> int:
        with self._transaction() as conn:
            return people_sql.join_people(conn, rows.locked(conn, collection), joins)

    def refusals(self, collection: str) -> list[tuple[str, str]]:
        with self._connection() as conn:
            return people_sql.refusals(conn, rows.find(conn, collection))

    def people_revision(self, collection: str) -> int:
        with self._connection() as conn:
            return people_sql.people_revision(conn, rows.find(conn, collection))

    def move_faces(self, collection: str, face_ids: Sequence[str], person_id: str | None) -> PersonInfo:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            moved_to = people_sql.move_faces(conn, target, face_ids, person_id)
            people_sql.corrected(conn, target)
            return people_sql.person(conn, target, moved_to)[0]

    def merge_people(self, collection: str, person_id: str, other_id: str) -> PersonInfo:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            people_sql.merge_people(conn, target, person_id, other_id)
            people_sql.corrected(conn, target)
            return people_sql.person(conn, target, person_id)[0]

    def refuse_face(self, collection: str, person_id: str, face_id: str) -> PersonInfo | None:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            left, unlabelled = people_sql.refuse_face(conn, target, person_id, face_id)
            people_sql.corrected(conn, target)
            if unlabelled is not None:  # the subject lost the face (and goes when it was its last)
                gone = _uncount_subject_faces(conn, target, [unlabelled])
                conn.execute("UPDATE gallery_collections SET subjects = subjects - %s WHERE id = %s", (gone, target.id))
            return people_sql.person(conn, target, person_id)[0] if left else None

    def delete_person(self, collection: str, person_id: str) -> int:
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            gone = people_sql.delete_person(conn, target, person_id)
            people_sql.corrected(conn, target)
            subjects = _uncount_subject_faces(conn, target, [name for name, _ in gone if name is not None])
            _uncount_photo_faces(conn, target, [photo for _, photo in gone if photo is not None])
            conn.execute(
                "UPDATE gallery_collections SET subjects = subjects - %s, faces = faces - %s WHERE id = %s",
                (subjects, len(gone), target.id),
            )
            return len(gone)

    def replace_people(
        self,
        collection: str,
        groups: Sequence[Sequence[str]],
        considered: Collection[str],
        based_on: int | None = None,
    ) -> int | None:
        with self._transaction() as conn:
            return people_sql.replace_people(conn, rows.locked(conn, collection), groups, considered, based_on)

    # --- search and export

    # --- re-cluster jobs (the ClusterJobStore port; the statements are people.py's)

    def claim_cluster_job(self, job: ClusterJob, stale_before: datetime) -> ClusterJob:
        try:
            with self._transaction() as conn:
                held = people_sql.claim_cluster_job(conn, rows.find(conn, job.collection), job, stale_before)
        except psycopg.errors.ForeignKeyViolation as exc:  # the collection was deleted meanwhile
            raise CollectionNotFound(f"collection {job.collection!r} does not exist") from exc
        return job if held is None else held

    def save_cluster_job(self, job: ClusterJob) -> bool:
        with self._transaction() as conn:
            return people_sql.save_cluster_job(conn, job)

    def cluster_job(self, collection: str) -> ClusterJob | None:
        with self._connection() as conn:
            return people_sql.cluster_job(conn, rows.find(conn, collection), collection)

    def search(
        self, collection: str, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> SearchOutcome:
        with self._transaction() as conn:
            target = rows.find(conn, collection)
            matrix = checks.probes(probes, target.dimension, top_k)
            if external_id is None:
                return self._search.everyone(conn, target, matrix, top_k)
            subject_faces, _ = rows.subject(conn, target, collection, external_id)
            return search.of_subject(conn, target, matrix, top_k, external_id, subject_faces)

    def faces(self, collection: str) -> Iterator[FaceRecord]:
        with self._connection() as conn:
            target = rows.find(conn, collection)
        return self._export(target)

    def _export(self, target: rows.Target) -> Iterator[FaceRecord]:
        after = -1
        # The collection's id in the condition too: without it the primary key (collection_id, seq) is not
        # seen to give seq's order, and every page was a scan and a sort of the whole partition (12 s
        # to read 100k faces, growing as the square of the collection).
        query = sql.SQL("SELECT seq, {} FROM {} WHERE collection_id = %s AND seq > %s ORDER BY seq LIMIT %s").format(
            sql.SQL(rows.FACE_COLUMNS), target.table
        )
        while True:
            try:
                with self._connection() as conn:
                    page = conn.cursor(binary=True).execute(query, (target.id, after, EXPORT_PAGE)).fetchall()
            except CollectionNotFound:
                return  # deleted meanwhile
            if not page:
                return
            after = page[-1][0]
            for row in page:
                yield face_record(row[1:])

    # --- bulk imports (not in the port)

    def drop_index(self, collection: str) -> None:
        """Drop the collection's HNSW index before a large import (each face added then skips the graph
        update); searches meanwhile scan exactly. `build_index` puts it back, much faster than the
        inserts would have: pgvector builds a graph in memory, in parallel workers."""
        with self._transaction() as conn:
            schema.drop_index(conn, rows.locked(conn, collection).id)

    def build_index(self, collection: str, maintenance_work_mem: str | None = None) -> None:
        """Build the collection's HNSW index if it has none. Writes to the collection wait meanwhile;
        searches go on. `maintenance_work_mem` (for example "4GB") should hold the whole graph."""
        with self._transaction() as conn:
            target = rows.locked(conn, collection)
            if maintenance_work_mem is not None:
                conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
            schema.create_index(conn, target.id, target.dimension, self._index)

    # --- the store

    def health(self) -> StoreHealth:
        try:
            with self._pool.connection(timeout=min(2.0, self._timeout)) as conn, conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 2000")
                found = conn.execute(rows.COLLECTION + " ORDER BY name").fetchall()
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            if self._answered:
                logger.error("PostgreSQL gallery: the database does not answer: %s", exc)
            self._answered = False
            return StoreHealth(store="postgresql", ok=False, detail="PostgreSQL does not answer")
        self._answered = True
        quarantined = tuple(
            QuarantinedCollection(row[1] if isinstance(row[1], str) else repr(row[1]), problem)
            for row in found
            if (problem := rows.problem(row)) is not None
        )
        return StoreHealth("postgresql", True, "PostgreSQL answers", quarantined)

    def close(self) -> None:
        self._pool.close()

    # --- inside

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each new connection: the vector codec, UTC timestamps."""
        vector_codec.register(conn, self._vector_oid)
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


def _uncount_subject_faces(conn: psycopg.Connection[TupleRow], target: rows.Target, external_ids: list[str]) -> int:
    """Deleted faces of these subjects (one entry per face) off their counts; a subject left with none
    goes. How many subjects went."""
    gone = 0
    for name, count in Counter(external_ids).items():
        left = conn.execute(
            "UPDATE gallery_subjects SET faces = faces - %s WHERE collection_id = %s AND external_id = %s"
            " RETURNING faces",
            (count, target.id, name),
        ).fetchone()
        if left is not None and left[0] <= 0:
            conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND external_id = %s", (target.id, name)
            )
            gone += 1
    return gone


def _uncount_photo_faces(conn: psycopg.Connection[TupleRow], target: rows.Target, photo_ids: list[str]) -> None:
    """Deleted faces of these photos (one entry per face) off their counts; the photo stays (indexed)."""
    conn.cursor().executemany(
        "UPDATE gallery_photos SET faces = faces - %s WHERE collection_id = %s AND photo_id = %s",
        [(count, target.id, photo_id) for photo_id, count in Counter(photo_ids).items()],
    )
