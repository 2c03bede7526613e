"""A gallery in one SQLite file, searched exactly on an in-memory matrix per collection.

- Durable: WAL journal, `synchronous=FULL`; a face `add_face` returned has been fsynced.
- Deleted means gone: `secure_delete=ON` zeroes freed content, and every delete ends with a
  `wal_checkpoint(TRUNCATE)`, so neither the database file nor its -wal file keeps the vector.
- One process per file: an exclusive lock on `<file>.lock` (other processes get StoreUnavailable),
  since each process keeps its own matrix of the vectors. Threads share one connection and one lock;
  writes commit to SQLite first and only then change the matrix.
- Vectors are float32 BLOBs, 16 KiB pages (a 512-D vector is 2 KiB; 4 KiB pages would hold one each).
- A collection read back broken at open (a value no write could have stored, a vector of the wrong
  size) is quarantined: logged, reported by `health`, answered `CollectionUnavailable`; the others
  are served. Errors name no file: the path goes to the log only.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from adapters.stores import checks
from adapters.stores.face_rows import face_record
from adapters.stores.matrix import FaceMatrix
from adapters.stores.matrix_collection import MatrixCollection
from domain.additions import Additions, StoredState, check_new_collection, plan_additions
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    CollectionUnavailable,
    FaceNotFound,
    FaceServiceError,
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
    SubjectInfo,
    collection_problem,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HEALTH_WAIT_SECONDS = 0.05  # longer, and a write (an import) holds the database: busy, not down
PAGE_SIZE = 16384
LOAD_CHUNK = 4096  # rows per fetch when the matrices are loaded at open
EXPORT_PAGE = 512  # rows per page of `faces`
IMPORT_CHUNK = 512  # faces checked and written together by an import

# Each entry takes the schema from version i to i + 1 (PRAGMA user_version).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_id TEXT NOT NULL,
            dimension INTEGER NOT NULL,
            threshold REAL NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE subjects (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            external_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (collection_id, external_id)
        )""",
        """CREATE TABLE faces (
            seq INTEGER PRIMARY KEY,
            face_id TEXT NOT NULL UNIQUE,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            subject_id INTEGER NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
            source_digest TEXT NOT NULL,
            x1 REAL, y1 REAL, x2 REAL, y2 REAL,
            confidence REAL,
            created_at INTEGER NOT NULL,
            embedding BLOB NOT NULL,
            UNIQUE (subject_id, source_digest)
        )""",
        "CREATE INDEX faces_by_collection ON faces (collection_id, seq)",
    ),
)

# A face's columns in face_rows.COLUMNS' order, after any leading columns a query names first.
_FACE_COLUMNS = (
    " f.face_id, s.external_id, f.embedding, f.x1, f.y1, f.x2, f.y2, f.confidence, f.source_digest, f.created_at"
)
_FACES = _FACE_COLUMNS + " FROM faces f JOIN subjects s ON s.id = f.subject_id"
_SUBJECT_FACES = "SELECT" + _FACES + " WHERE f.subject_id = ? ORDER BY f.created_at, f.seq"
_FACE_TO_DELETE = "SELECT f.seq, f.subject_id," + _FACES + " WHERE f.face_id = ? AND f.collection_id = ?"
_EXPORT_PAGE = "SELECT f.seq," + _FACES + " WHERE f.collection_id = ? AND f.seq > ? ORDER BY f.seq LIMIT ?"
_SUBJECTS = (
    "SELECT s.external_id, s.created_at, (SELECT COUNT(*) FROM faces f WHERE f.subject_id = s.id)"
    " FROM subjects s WHERE s.collection_id = ?"
)
_SUBJECTS_PAGE = _SUBJECTS + " ORDER BY s.external_id LIMIT ?"
_SUBJECTS_AFTER = _SUBJECTS + " AND s.external_id > ? ORDER BY s.external_id LIMIT ?"
# The batch's subjects and the faces already stored for its (external id, source digest) pairs, each in
# one query: the batch's keys travel as one JSON array, read first (CROSS JOIN fixes the order) so
# that every key is one look-up in the unique indexes.
_SUBJECT_IDS = (
    "SELECT s.external_id, s.id FROM json_each(?) AS wanted CROSS JOIN subjects s"
    " WHERE s.collection_id = ? AND s.external_id = wanted.value"
)
_FACES_BY_SOURCE = (
    "SELECT" + _FACE_COLUMNS + " FROM json_each(?) AS wanted CROSS JOIN subjects s CROSS JOIN faces f"
    " WHERE s.collection_id = ? AND s.external_id = json_extract(wanted.value, '$[0]')"
    " AND f.subject_id = s.id AND f.source_digest = json_extract(wanted.value, '$[1]')"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass
class _Adding:
    """What one transaction has added to a collection: counted with the matrix for the limits while it
    runs, appended to the matrix after its commit (never before: a search must not find a face a
    rollback would take back)."""

    faces: list[FaceRecord] = field(default_factory=list)
    subjects: int = 0  # created
    per_subject: Counter[str] = field(default_factory=Counter)  # faces added, by external id
    duplicates: int = 0

    def stored_state(
        self, matrix: FaceMatrix, subjects: Iterable[str], by_source: dict[tuple[str, str], FaceRecord]
    ) -> StoredState:
        """The add-faces rule's view of the collection: the matrix (committed) and this transaction's."""
        held = {name: matrix.faces_of(name) + self.per_subject[name] for name in subjects}
        return StoredState(matrix.subjects + self.subjects, len(matrix) + len(self.faces), held, by_source)

    def add(self, plan: Additions) -> None:
        self.faces += plan.new_faces
        self.subjects += len(plan.new_subjects)
        self.per_subject.update(face.external_id for face in plan.new_faces)
        self.duplicates += sum(1 for _, duplicate in plan.results if duplicate)

    def commit(self, matrix: FaceMatrix) -> None:
        for start in range(0, len(self.faces), LOAD_CHUNK):
            chunk = self.faces[start : start + LOAD_CHUNK]
            matrix.append(
                [face.face_id for face in chunk],
                [face.external_id for face in chunk],
                np.stack([face.embedding for face in chunk]),
            )


@dataclass
class _Collection(MatrixCollection):
    id: int  # its row in `collections`


class SqliteGallery:
    """The FaceGallery port on SQLite (standard library), with exact search in memory."""

    def __init__(self, path: Path, limits: GalleryLimits) -> None:
        self._path = Path(path)
        self._limits = limits
        self._lock = threading.Lock()  # every use of the connection, and every write
        self._collections: dict[str, _Collection] = {}
        self._quarantined: dict[str, tuple[int, str]] = {}  # name as stored -> (row id, reason)
        self._closed = False
        self._lock_file = self._claim()
        try:
            self._db = self._connect()
            self._migrate()
            self._load()
        except sqlite3.Error as exc:
            self._release()
            logger.error("the SQLite gallery %s cannot be opened: %s", self._path, exc)
            raise StoreUnavailable(f"the SQLite gallery cannot be opened: {exc}") from exc
        except BaseException:
            self._release()
            raise
        logger.info(
            "SQLite gallery %s: %d collections served, %d quarantined",
            self._path,
            len(self._collections),
            len(self._quarantined),
        )

    @property
    def kind(self) -> str:
        return "sqlite"

    @property
    def path(self) -> Path:
        return self._path

    # --- collections

    def create_collection(self, name: str, model_id: str, dimension: int, threshold: float) -> CollectionInfo:
        checks.collection(name, model_id, dimension, threshold)
        with self._writing() as db:
            if name in self._collections:
                raise CollectionExists(f"collection {name!r} already exists")
            self._refuse_quarantined(name)
            check_new_collection(self._limits, len(self._collections) + len(self._quarantined))
            with _transaction(db):
                collection = self._insert_collection(db, name, model_id, dimension, threshold)
            self._collections[name] = collection
            return collection.info()

    def collection(self, name: str) -> CollectionInfo:
        self._check_open()
        return self._get(name).info()

    def collections(self) -> list[CollectionInfo]:
        self._check_open()
        found = list(self._collections.values())
        return sorted((collection.info() for collection in found), key=lambda info: info.name)

    def delete_collection(self, name: str) -> None:
        with self._writing() as db:
            if name in self._quarantined:  # an operator's way out: the broken rows go with it
                with _transaction(db):
                    db.execute("DELETE FROM collections WHERE id = ?", (self._quarantined[name][0],))
                del self._quarantined[name]
                self._forget_deleted(db)
                return
            collection = self._get(name)
            with _transaction(db):
                db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
            del self._collections[name]
            collection.matrix.clear()
            self._forget_deleted(db)

    # --- faces

    def add_face(self, collection: str, face: FaceRecord) -> tuple[FaceRecord, bool]:
        return self.add_faces(collection, [face])[0]

    def add_faces(self, collection: str, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        """`add_face` for many faces in one transaction (imports, the benchmark): all are stored, or,
        when a limit would be exceeded, none. Each result as `add_face` gives it."""
        with self._writing() as db:
            target = self._get(collection)
            records = [_stored(face, target.dimension) for face in faces]
            adding = _Adding()
            with _transaction(db):
                results = self._add_rows(db, target, records, adding)
            adding.commit(target.matrix)  # committed: only now does the matrix see the new faces
            return results

    def import_collection(
        self, name: str, model_id: str, dimension: int, threshold: float, faces: Iterable[FaceRecord]
    ) -> ImportOutcome:
        """One transaction for the collection and every face: a crash or an error part-way leaves
        nothing (SQLite rolls an uncommitted transaction back when it next opens the file)."""
        checks.collection(name, model_id, dimension, threshold)
        with self._writing() as db:
            target = self._collections.get(name)
            created = target is None
            if target is None:
                self._refuse_quarantined(name)
            elif (target.model_id, target.dimension) != (model_id, dimension):
                raise CollectionModelMismatch(f"collection {name!r} holds vectors of {target.model_id}")
            adding = _Adding()
            with _transaction(db):
                if target is None:
                    check_new_collection(self._limits, len(self._collections) + len(self._quarantined))
                    target = self._insert_collection(db, name, model_id, dimension, threshold)
                records = iter(faces)
                while chunk := list(itertools.islice(records, IMPORT_CHUNK)):
                    self._add_rows(db, target, [_stored(face, dimension) for face in chunk], adding)
            if created:
                self._collections[name] = target
            adding.commit(target.matrix)
            return ImportOutcome(created, len(adding.faces), adding.duplicates)

    def _insert_collection(
        self, db: sqlite3.Connection, name: str, model_id: str, dimension: int, threshold: float
    ) -> _Collection:
        created_at = checks.now()
        cursor = db.execute(
            "INSERT INTO collections (name, model_id, dimension, threshold, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, model_id, dimension, threshold, _micros(created_at)),
        )
        assert cursor.lastrowid is not None
        return _Collection(name, model_id, dimension, threshold, created_at, FaceMatrix(dimension), cursor.lastrowid)

    def _add_rows(
        self, db: sqlite3.Connection, target: _Collection, faces: Sequence[FaceRecord], adding: _Adding
    ) -> list[tuple[FaceRecord, bool]]:
        """Decide `faces` by the add-faces rule and write what it answers, inside the caller's
        transaction; `adding` keeps what this transaction added (earlier chunks of an import too)."""
        names = json.dumps(sorted({face.external_id for face in faces}))
        subject_ids: dict[str, int] = dict(db.execute(_SUBJECT_IDS, (names, target.id)).fetchall())
        keys = json.dumps([(face.external_id, face.source_digest) for face in faces])
        found = [_record(row, target.dimension) for row in db.execute(_FACES_BY_SOURCE, (keys, target.id))]
        by_source = {(face.external_id, face.source_digest): face for face in found}
        state = adding.stored_state(target.matrix, subject_ids, by_source)
        plan = plan_additions(target.name, faces, self._limits, state)
        for first in plan.new_subjects:
            cursor = db.execute(
                "INSERT INTO subjects (collection_id, external_id, created_at) VALUES (?, ?, ?)",
                (target.id, first.external_id, _micros(first.created_at)),
            )
            assert cursor.lastrowid is not None
            subject_ids[first.external_id] = cursor.lastrowid
        db.executemany(
            "INSERT INTO faces (face_id, collection_id, subject_id, source_digest, x1, y1, x2, y2,"
            " confidence, created_at, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    face.face_id,
                    target.id,
                    subject_ids[face.external_id],
                    face.source_digest,
                    *(face.bbox or (None, None, None, None)),
                    face.confidence,
                    _micros(face.created_at),
                    face.embedding.tobytes(),
                )
                for face in plan.new_faces
            ],
        )
        adding.add(plan)
        return plan.results

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        with self._reading() as db:
            target = self._get(collection)
            # Two statements, so that the cursor is a range on the (collection_id, external_id) index.
            query = _SUBJECTS_PAGE if after is None else _SUBJECTS_AFTER
            values = (target.id, max(0, limit)) if after is None else (target.id, after, max(0, limit))
            rows = db.execute(query, values).fetchall()
        return [SubjectInfo(external_id=row[0], faces=row[2], created_at=_moment(row[1])) for row in rows]

    def subject(self, collection: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        with self._reading() as db:
            target = self._get(collection)
            row = db.execute(
                "SELECT id, created_at FROM subjects WHERE collection_id = ? AND external_id = ?",
                (target.id, external_id),
            ).fetchone()
            if row is None:
                raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
            faces = [_record(face, target.dimension) for face in db.execute(_SUBJECT_FACES, (row[0],))]
        return SubjectInfo(external_id=external_id, faces=len(faces), created_at=_moment(row[1])), faces

    def delete_subject(self, collection: str, external_id: str) -> int:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                row = db.execute(
                    "SELECT id FROM subjects WHERE collection_id = ? AND external_id = ?", (target.id, external_id)
                ).fetchone()
                if row is None:
                    raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
                removed = db.execute("DELETE FROM faces WHERE subject_id = ?", (row[0],)).rowcount
                db.execute("DELETE FROM subjects WHERE id = ?", (row[0],))
            target.matrix.remove_subject(external_id)
            self._forget_deleted(db)
            return removed

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                row = db.execute(_FACE_TO_DELETE, (face_id, target.id)).fetchone()
                if row is None:
                    raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
                face = _record(row[2:], target.dimension)
                db.execute("DELETE FROM faces WHERE seq = ?", (row[0],))
                db.execute(
                    "DELETE FROM subjects WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = ?)",
                    (row[1], row[1]),
                )
            target.matrix.remove_face(face_id)
            self._forget_deleted(db)
            return face

    # --- search and export

    def search(
        self, collection: str, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> SearchOutcome:
        self._check_open()
        target = self._get(collection)
        matrix = checks.probes(probes, target.dimension, top_k)
        if external_id is not None and not target.matrix.has_subject(external_id):
            raise SubjectNotFound(f"collection {collection!r} has no subject {external_id!r}")
        hits, searched = target.matrix.search(matrix, top_k, external_id)
        return SearchOutcome(hits=hits, method="exact", searched=searched)

    def faces(self, collection: str) -> Iterator[FaceRecord]:
        self._check_open()
        target = self._get(collection)
        return self._export(target)

    def _export(self, target: _Collection) -> Iterator[FaceRecord]:
        after = 0
        while True:
            with self._reading() as db:
                rows = db.execute(_EXPORT_PAGE, (target.id, after, EXPORT_PAGE)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            for row in rows:
                yield _record(row[1:], target.dimension)

    # --- the store

    def health(self) -> StoreHealth:
        quarantined = tuple(
            QuarantinedCollection(name, reason) for name, (_, reason) in sorted(self._quarantined.items())
        )
        faces = sum(len(collection.matrix) for collection in list(self._collections.values()))
        counts = f"{len(self._collections)} collections, {faces} faces"
        if not self._lock.acquire(timeout=HEALTH_WAIT_SECONDS):
            return StoreHealth("sqlite", True, f"{counts}; a long write is in progress", quarantined)
        try:
            self._check_open()
            self._db.execute("SELECT 1").fetchone()
        except (StoreUnavailable, sqlite3.Error) as exc:
            message = exc.message if isinstance(exc, StoreUnavailable) else f"the SQLite gallery failed: {exc}"
            return StoreHealth("sqlite", False, message, quarantined)
        finally:
            self._lock.release()
        return StoreHealth("sqlite", True, counts, quarantined)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._release()

    # --- inside

    def _claim(self) -> IO[bytes]:
        """Create the directory if missing, then hold `<file>.lock` for as long as the gallery is open."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(self._path.with_name(self._path.name + ".lock"), "ab")  # noqa: SIM115 (held while open)
        except OSError as exc:
            logger.error("the SQLite gallery's directory %s is not writable: %s", self._path.parent, exc)
            # strerror ("Permission denied", "Not a directory") never holds the path; str(exc) does
            raise StoreUnavailable(
                f"the SQLite gallery's directory (DATA_DIR) is not writable: {exc.strerror or type(exc).__name__}"
            ) from exc
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock_file.close()
            logger.error("the SQLite gallery %s is open in another process", self._path)
            raise StoreUnavailable("the SQLite gallery is open in another process") from exc
        return lock_file

    def _release(self) -> None:
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()

    def _connect(self) -> sqlite3.Connection:
        fresh = not self._path.exists() or self._path.stat().st_size == 0
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10)
        if fresh:
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the first table and WAL, or never
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            db.close()
            raise StoreUnavailable(f"the SQLite gallery cannot use a write-ahead log (got {mode})")
        for pragma in (
            "synchronous = FULL",  # each commit fsyncs the WAL: what add_face returned survives power loss
            "foreign_keys = ON",
            "secure_delete = ON",  # freed content is overwritten with zeros
            "journal_size_limit = 67108864",
            "cache_size = -32768",  # KiB: the B-tree pages enrolments touch (face id index) stay cached
        ):
            db.execute(f"PRAGMA {pragma}")
        return db

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"the SQLite gallery has schema version {version}; this release knows {SCHEMA_VERSION}"
            )
        for step in range(version, SCHEMA_VERSION):
            with _transaction(self._db):
                for statement in MIGRATIONS[step]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {step + 1}")

    def _load(self) -> None:
        """Every collection's vectors into its matrix: one query per collection, read in chunks. A
        collection that cannot be served is quarantined, never a reason to serve none."""
        rows = self._db.execute("SELECT id, name, model_id, dimension, threshold, created_at FROM collections")
        for row in rows.fetchall():
            cid, name = row[0], row[1]
            try:
                self._collections[name] = self._loaded(*row)
            except Exception as exc:
                reason = exc.message if isinstance(exc, FaceServiceError) else "its rows cannot be read"
                label = name if isinstance(name, str) else repr(name)
                logger.error(
                    "SQLite gallery %s: collection %r (row %s) is quarantined, not served: %s (%r)",
                    self._path,
                    name,
                    cid,
                    reason,
                    exc,
                )
                self._quarantined[label] = (int(cid), reason)
        self._db.execute("PRAGMA shrink_memory")  # the page cache the load filled with vector pages read once

    def _loaded(
        self, cid: int, name: str, model_id: str, dimension: int, threshold: float, created_at: int
    ) -> _Collection:
        problem = collection_problem(name, model_id, dimension, threshold)
        if problem is not None:
            raise CollectionUnavailable(problem)
        if isinstance(created_at, bool) or not isinstance(created_at, int):
            raise CollectionUnavailable("its creation time is not a timestamp")
        db = self._db
        count = db.execute("SELECT COUNT(*) FROM faces WHERE collection_id = ?", (cid,)).fetchone()[0]
        names = dict(db.execute("SELECT id, external_id FROM subjects WHERE collection_id = ?", (cid,)).fetchall())
        # Headroom: rows never written cost no memory (the pages stay untouched), and the first
        # enrolments after a start do not copy the whole matrix to grow it.
        matrix = FaceMatrix(dimension, capacity=count + count // 4 + 16)
        cursor = db.execute(
            "SELECT subject_id, face_id, embedding FROM faces WHERE collection_id = ? ORDER BY seq", (cid,)
        )
        while rows := cursor.fetchmany(LOAD_CHUNK):
            subject_ids, face_ids, blobs = zip(*rows, strict=True)  # columns, without a Python loop per row
            blob = b"".join(blobs)
            if len(blob) != len(rows) * dimension * 4:
                raise CollectionUnavailable("it holds a vector of the wrong size")
            vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dimension)
            if not np.isfinite(vectors).all():
                raise CollectionUnavailable("it holds a vector with a non-finite value")
            matrix.append(face_ids, list(map(names.__getitem__, subject_ids)), vectors)
        return _Collection(name, model_id, dimension, threshold, _moment(created_at), matrix, cid)

    def _forget_deleted(self, db: sqlite3.Connection) -> None:
        """After a delete: copy the WAL's pages (with the zeroed content) into the file and empty the WAL."""
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreUnavailable("the SQLite gallery could not checkpoint its write-ahead log")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the SQLite gallery is closed")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            try:
                yield self._db
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
                raise  # a bug, not a failing database
            except sqlite3.Error as exc:
                # SQLite's own message ("database or disk is full") names no file; the log has the path.
                logger.error("the SQLite gallery %s failed: %s", self._path, exc)
                raise StoreUnavailable(f"the SQLite gallery failed: {exc}") from exc

    _writing = _reading  # one connection, one lock: reads and writes take the same path

    def _get(self, name: str) -> _Collection:
        collection = self._collections.get(name)
        if collection is None:
            self._refuse_quarantined(name)
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return collection

    def _refuse_quarantined(self, name: str) -> None:
        if name in self._quarantined:
            raise CollectionUnavailable(
                f"collection {name!r} is quarantined: {self._quarantined[name][1]}; it is not served until an "
                "operator deletes or repairs it"
            )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _stored(face: FaceRecord, dimension: int) -> FaceRecord:
    """The face as this store reads it back: checked, its time in UTC to the microsecond."""
    return replace(checks.stored(face, dimension), created_at=_moment(_micros(face.created_at)))


def _record(row: Sequence[Any], dimension: int) -> FaceRecord:
    face_id, external_id, blob, *box_and_confidence, digest, created_at = row
    embedding = np.frombuffer(blob, dtype=np.float32).copy()
    if embedding.shape[0] != dimension:
        raise StoreUnavailable("the SQLite gallery holds a vector of the wrong size")
    return face_record((face_id, external_id, embedding, *box_and_confidence, digest, _moment(created_at)))
