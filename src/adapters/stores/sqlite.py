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
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from adapters.stores import checks, job_rows, people_rows
from adapters.stores.face_rows import face_record, landmarks_text, quality_text
from adapters.stores.matrix import FaceMatrix
from adapters.stores.sqlite_collection import Adding, SqliteCollection
from adapters.stores.sqlite_load import load_collection
from adapters.stores.sqlite_sql import (
    BUMP_PEOPLE_REVISION,
    CLUSTER_JOB,
    EXPORT_FACES,
    FACE_BY_SEQ,
    FACE_SEQS,
    FACE_TO_DELETE,
    FACES,
    FACES_BY_SOURCE,
    HIT_FACES,
    INSERT_FACE,
    INTERRUPT_CLUSTER_JOBS,
    JOIN_PERSON,
    KEEP_PEOPLE_OF,
    KEPT_MEMBERSHIPS,
    MEMBERSHIPS,
    MIGRATIONS,
    PEOPLE_AFTER,
    PEOPLE_OF,
    PEOPLE_PAGE,
    PEOPLE_REFS,
    PEOPLE_REVISION,
    PERSON,
    PERSON_FACES,
    PHOTO,
    PHOTO_FACES,
    PHOTO_ROWS,
    PHOTOS_AFTER,
    PHOTOS_PAGE,
    REFUSALS,
    SAVE_CLUSTER_JOB,
    SCHEMA_VERSION,
    SUBJECT_FACES,
    SUBJECT_IDS,
    SUBJECTS_AFTER,
    SUBJECTS_PAGE,
)
from domain.additions import (
    check_collection_faces,
    check_merge,
    check_new_collection,
    plan_additions,
    plan_labels,
    unlabels_on_refusal,
)
from domain.cluster_jobs import INTERRUPTED, ClusterJob
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    CollectionUnavailable,
    FaceNotFound,
    FaceServiceError,
    InvalidInput,
    PersonNotFound,
    PhotoExists,
    PhotoNotFound,
    StoreUnavailable,
    SubjectNotFound,
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
    SubjectHit,
    SubjectInfo,
)
from domain.model import Vector

logger = logging.getLogger(__name__)

HEALTH_WAIT_SECONDS = 0.05  # longer, and a write (an import) holds the database: busy, not down
PAGE_SIZE = 16384
EXPORT_PAGE = 512  # rows per page of `faces`
IMPORT_CHUNK = 512  # faces checked and written together by an import

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class SqliteGallery:
    """The FaceGallery port on SQLite (standard library), with exact search in memory."""

    def __init__(self, path: Path, limits: GalleryLimits) -> None:
        self._path = Path(path)
        self._limits = limits
        self._lock = threading.Lock()  # every use of the connection, and every write
        self._collections: dict[str, SqliteCollection] = {}
        self._quarantined: dict[str, tuple[int, str]] = {}  # name as stored -> (row id, reason)
        self._closed = False
        self._lock_file = self._claim()
        try:
            self._db = self._connect()
            self._migrate()
            with _transaction(self._db):
                self._db.execute(INTERRUPT_CLUSTER_JOBS, (INTERRUPTED,))
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
            collection.by_photo.clear()
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
            adding = Adding()
            with _transaction(db):
                results = self._add_rows(db, target, records, adding)
            adding.commit(target)  # committed: only now do the matrices see the new faces
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
            adding = Adding()
            with _transaction(db):
                if target is None:
                    check_new_collection(self._limits, len(self._collections) + len(self._quarantined))
                    target = self._insert_collection(db, name, model_id, dimension, threshold)
                records = iter(faces)
                while chunk := list(itertools.islice(records, IMPORT_CHUNK)):
                    self._add_rows(db, target, [_stored(face, dimension) for face in chunk], adding)
            if created:
                self._collections[name] = target
            adding.commit(target)
            return ImportOutcome(created, len(adding.faces), adding.duplicates)

    def _insert_collection(
        self, db: sqlite3.Connection, name: str, model_id: str, dimension: int, threshold: float
    ) -> SqliteCollection:
        created_at = checks.now()
        cursor = db.execute(
            "INSERT INTO collections (name, model_id, dimension, threshold, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, model_id, dimension, threshold, _micros(created_at)),
        )
        assert cursor.lastrowid is not None
        return SqliteCollection(
            name, model_id, dimension, threshold, created_at, FaceMatrix(dimension), cursor.lastrowid
        )

    def _add_rows(
        self, db: sqlite3.Connection, target: SqliteCollection, faces: Sequence[FaceRecord], adding: Adding
    ) -> list[tuple[FaceRecord, bool]]:
        """Decide `faces` by the add-faces rule and write what it answers, inside the caller's
        transaction; `adding` keeps what this transaction added (earlier chunks of an import too)."""
        labelled = [face for face in faces if face.external_id is not None]
        names = json.dumps(sorted({face.external_id for face in labelled}))
        subject_ids: dict[str | None, int] = dict(db.execute(SUBJECT_IDS, (names, target.id)).fetchall())
        keys = json.dumps([(face.external_id, face.source_digest) for face in labelled])
        found = [_record(row, target.dimension) for row in db.execute(FACES_BY_SOURCE, (keys, target.id))]
        by_source = {(face.external_id or "", face.source_digest): face for face in found}
        photo_ids = json.dumps(sorted({face.photo_id for face in faces if face.photo_id is not None}))
        photos = {row[0]: (row[1], row[2]) for row in db.execute(PHOTO_ROWS, (photo_ids, target.id))}
        state = adding.stored_state(target, (name for name in subject_ids if name is not None), by_source, photos)
        plan = plan_additions(target.name, faces, self._limits, state)
        for first in plan.new_subjects:
            cursor = db.execute(
                "INSERT INTO subjects (collection_id, external_id, created_at) VALUES (?, ?, ?)",
                (target.id, first.external_id, _micros(first.created_at)),
            )
            assert cursor.lastrowid is not None
            subject_ids[first.external_id] = cursor.lastrowid
        for first in plan.new_photos:
            assert first.photo_id is not None
            photo_row = self._insert_photo(db, target, first.photo_id, first.source_digest, first.created_at)
            adding.photos[first.photo_id] = (photo_row, first.source_digest)
        refs = {photo_id: row for photo_id, (row, _) in (photos | adding.photos).items()}
        _insert_faces(db, target, plan.new_faces, subject_ids, refs)
        adding.add(plan)
        return plan.results

    @staticmethod
    def _insert_photo(
        db: sqlite3.Connection, target: SqliteCollection, photo_id: str, digest: str, created_at: datetime
    ) -> int:
        cursor = db.execute(
            "INSERT INTO photos (collection_id, photo_id, source_digest, created_at) VALUES (?, ?, ?, ?)",
            (target.id, photo_id, digest, _micros(created_at)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        with self._reading() as db:
            target = self._get(collection)
            # Two statements, so that the cursor is a range on the (collection_id, external_id) index.
            query = SUBJECTS_PAGE if after is None else SUBJECTS_AFTER
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
            faces = [_record(face, target.dimension) for face in db.execute(SUBJECT_FACES, (row[0],))]
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
                pictured = db.execute(
                    "SELECT face_id FROM faces WHERE subject_id = ? AND photo_ref IS NOT NULL", (row[0],)
                ).fetchall()
                removed = db.execute("DELETE FROM faces WHERE subject_id = ?", (row[0],)).rowcount
                db.execute("DELETE FROM subjects WHERE id = ?", (row[0],))
            target.matrix.remove_subject(external_id)
            for (face_id,) in pictured:  # its faces from photos leave photo search too
                target.by_photo.remove_face(face_id)
            self._forget_deleted(db)
            return removed

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                row = db.execute(FACE_TO_DELETE, (face_id, target.id)).fetchone()
                if row is None:
                    raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
                face = _record(row[2:], target.dimension)
                db.execute("DELETE FROM faces WHERE seq = ?", (row[0],))
                db.execute(
                    "DELETE FROM subjects WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = ?)",
                    (row[1], row[1]),
                )
            if face.external_id is None:
                target.unlabelled -= 1
            else:
                target.matrix.remove_face(face_id)
            if face.photo_id is not None:
                target.by_photo.remove_face(face_id)
            self._forget_deleted(db)
            return face

    # --- photos

    def add_photo(
        self, collection: str, photo: PhotoInfo, faces: Sequence[FaceRecord]
    ) -> tuple[PhotoInfo, list[FaceRecord], bool]:
        with self._writing() as db:
            target = self._get(collection)
            records = [_stored(face, target.dimension) for face in checks.photo_faces(photo, faces, target.dimension)]
            created_at = _moment(_micros(photo.created_at))
            with _transaction(db):
                row = db.execute(PHOTO, (target.id, photo.photo_id)).fetchone()
                if row is not None:
                    if row[1] != photo.source_digest:
                        raise PhotoExists(f"photo {photo.photo_id!r} was indexed from other bytes; delete it first")
                    stored = [_record(face, target.dimension) for face in db.execute(PHOTO_FACES, (row[0],))]
                    return PhotoInfo(photo.photo_id, row[1], len(stored), _moment(row[2])), stored, True
                check_collection_faces(self._limits, collection, target.faces, len(records))
                photo_row = self._insert_photo(db, target, photo.photo_id, photo.source_digest, created_at)
                _insert_faces(db, target, records, {}, {photo.photo_id: photo_row})
            target.append(records)
            target.photos += 1
            return PhotoInfo(photo.photo_id, photo.source_digest, len(records), created_at), records, False

    def photos(self, collection: str, after: str | None, limit: int) -> list[PhotoInfo]:
        with self._reading() as db:
            target = self._get(collection)
            query = PHOTOS_PAGE if after is None else PHOTOS_AFTER
            values = (target.id, max(0, limit)) if after is None else (target.id, after, max(0, limit))
            rows = db.execute(query, values).fetchall()
        return [PhotoInfo(row[0], row[1], row[3], _moment(row[2])) for row in rows]

    def photo(self, collection: str, photo_id: str) -> tuple[PhotoInfo, list[FaceRecord]]:
        with self._reading() as db:
            target = self._get(collection)
            row = db.execute(PHOTO, (target.id, photo_id)).fetchone()
            if row is None:
                raise PhotoNotFound(f"collection {collection!r} has no photo {photo_id!r}")
            faces = [_record(face, target.dimension) for face in db.execute(PHOTO_FACES, (row[0],))]
        return PhotoInfo(photo_id, row[1], len(faces), _moment(row[2])), faces

    def delete_photo(self, collection: str, photo_id: str) -> int:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                row = db.execute(PHOTO, (target.id, photo_id)).fetchone()
                if row is None:
                    raise PhotoNotFound(f"collection {collection!r} has no photo {photo_id!r}")
                faces = db.execute("SELECT face_id, subject_id FROM faces WHERE photo_ref = ?", (row[0],)).fetchall()
                db.execute("DELETE FROM faces WHERE photo_ref = ?", (row[0],))
                db.execute("DELETE FROM photos WHERE id = ?", (row[0],))
                subjects = sorted({subject for _, subject in faces if subject is not None})
                db.executemany(  # a subject left with no face goes, as when its last face is deleted
                    "DELETE FROM subjects WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = ?)",
                    [(subject, subject) for subject in subjects],
                )
            target.by_photo.remove_subject(photo_id)
            for face_id, subject in faces:
                if subject is None:
                    target.unlabelled -= 1
                else:
                    target.matrix.remove_face(face_id)
            target.photos -= 1
            self._forget_deleted(db)
            return len(faces)

    def search_photos(
        self, collection: str, probe: Vector, min_similarity: float, top_k: int, after: PhotoCursor | None
    ) -> PhotoSearchOutcome:
        self._check_open()
        target = self._get(collection)
        matrix = checks.probes(probe, target.dimension, top_k)
        cursor = None if after is None else (after.similarity, after.photo_id)
        hits, count, _ = target.by_photo.groups_reaching(matrix[0], min_similarity, top_k, cursor)
        searched = target.faces
        return PhotoSearchOutcome(self._photo_hits(target, [hits])[0], count, "exact", searched)

    def search_photos_many(
        self, collection: str, probes: npt.NDArray[np.float32], min_similarity: float, top_k: int
    ) -> list[list[PhotoHit]]:
        self._check_open()
        target = self._get(collection)
        matrix = checks.probes(probes, target.dimension, top_k)
        return self._photo_hits(target, target.by_photo.groups_reaching_many(matrix, min_similarity, top_k))

    def _photo_hits(self, target: SqliteCollection, hits: list[list[SubjectHit]]) -> list[list[PhotoHit]]:
        """The photo matrix's hits (a photo's best face each) with their faces' boxes and subjects, read
        in one statement."""
        with self._reading() as db:
            wanted = json.dumps(sorted({hit.face_id for row in hits for hit in row}))
            found = {row[0]: row[1:] for row in db.execute(HIT_FACES, (wanted, target.id))}
        return [
            [
                PhotoHit(hit.external_id, hit.face_id, hit.similarity, face[0], None if face[1] is None else face[1:])
                for hit in row
                if (face := found.get(hit.face_id)) is not None  # deleted meanwhile
            ]
            for row in hits
        ]

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

    def _export(self, target: SqliteCollection) -> Iterator[FaceRecord]:
        after = 0
        while True:
            with self._reading() as db:
                rows = db.execute(EXPORT_FACES, (target.id, after, EXPORT_PAGE)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            for row in rows:
                yield _record(row[1:], target.dimension)

    # --- the store

    def label_faces(self, collection: str, face_ids: Sequence[str], external_id: str) -> int:
        unique = list(dict.fromkeys(face_ids))
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                seqs = dict(db.execute(FACE_SEQS, (json.dumps(unique), target.id)).fetchall())
                missing = next((face_id for face_id in unique if face_id not in seqs), None)
                if missing is not None:
                    raise FaceNotFound(f"collection {collection!r} has no face {missing!r}")
                faces = [
                    _record(db.execute(FACE_BY_SEQ, (seqs[face_id],)).fetchone(), target.dimension)
                    for face_id in unique
                ]
                subject = db.execute(
                    "SELECT id FROM subjects WHERE collection_id = ? AND external_id = ?", (target.id, external_id)
                ).fetchone()
                held = set()
                if subject is not None:
                    held = {
                        row[0] for row in db.execute("SELECT source_digest FROM faces WHERE subject_id = ?", subject)
                    }
                chosen = plan_labels(
                    collection,
                    faces,
                    external_id,
                    self._limits,
                    subject_exists=subject is not None,
                    subjects=target.matrix.subjects,
                    subject_faces=target.matrix.faces_of(external_id),
                    held_digests=held,
                )
                if not chosen:
                    return 0
                if subject is None:
                    subject = db.execute(
                        "INSERT INTO subjects (collection_id, external_id, created_at) VALUES (?, ?, ?) RETURNING id",
                        (target.id, external_id, _micros(checks.now())),
                    ).fetchone()
                db.executemany(
                    "UPDATE faces SET subject_id = ? WHERE seq = ?", [(subject[0], seqs[f.face_id]) for f in chosen]
                )
                db.execute(BUMP_PEOPLE_REVISION, (target.id,))
            # After the commit, as an enrolment: a search never finds what a rollback would take back.
            target.matrix.append(
                [f.face_id for f in chosen], [external_id] * len(chosen), np.stack([f.embedding for f in chosen])
            )
            target.unlabelled -= len(chosen)
            return len(chosen)

    # --- people (the PeopleStore port)

    def people(self, collection: str, after: str | None, limit: int) -> list[PersonInfo]:
        with self._reading() as db:
            target = self._get(collection)
            query = PEOPLE_PAGE if after is None else PEOPLE_AFTER
            values = (target.id, max(0, limit)) if after is None else (target.id, after, max(0, limit))
            rows = db.execute(query, values).fetchall()
            shown = {row[3]: _record(db.execute(FACE_BY_SEQ, (row[3],)).fetchone(), target.dimension) for row in rows}
        return [PersonInfo(row[0], row[2], _moment(row[1]), shown[row[3]], bool(row[4])) for row in rows]

    def person(self, collection: str, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        with self._reading() as db:
            target = self._get(collection)
            return self._person(db, target, person_id)

    def memberships(self, collection: str) -> dict[str, str]:
        with self._reading() as db:
            target = self._get(collection)
            return dict(db.execute(MEMBERSHIPS, (target.id,)).fetchall())

    def kept_memberships(self, collection: str) -> dict[str, str]:
        with self._reading() as db:
            target = self._get(collection)
            return dict(db.execute(KEPT_MEMBERSHIPS, (target.id,)).fetchall())

    def people_of(self, collection: str, face_ids: Sequence[str]) -> dict[str, str]:
        with self._reading() as db:
            target = self._get(collection)
            return dict(db.execute(PEOPLE_OF, (json.dumps(list(face_ids)), target.id)).fetchall())

    def join_people(self, collection: str, joins: Mapping[str, str]) -> int:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                seqs = dict(db.execute(FACE_SEQS, (json.dumps(list(joins)), target.id)).fetchall())
                wanted = json.dumps(sorted(set(joins.values())))
                refs = dict(db.execute(PEOPLE_REFS, (wanted, target.id)).fetchall())
                rows = [
                    (seqs[face_id], refs[person_id])
                    for face_id, person_id in joins.items()
                    if face_id in seqs and person_id in refs  # gone meanwhile: skipped
                ]
                db.executemany(JOIN_PERSON, rows)
            return len(rows)

    def refusals(self, collection: str) -> list[tuple[str, str]]:
        with self._reading() as db:
            target = self._get(collection)
            return [(row[0], row[1]) for row in db.execute(REFUSALS, (target.id,))]

    def people_revision(self, collection: str) -> int:
        with self._reading() as db:
            target = self._get(collection)
            return int(db.execute(PEOPLE_REVISION, (target.id,)).fetchone()[0])

    def move_faces(self, collection: str, face_ids: Sequence[str], person_id: str | None) -> PersonInfo:
        moving = people_rows.check_face_ids(face_ids)
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                seqs = dict(db.execute(FACE_SEQS, (json.dumps(moving), target.id)).fetchall())
                missing = next((face_id for face_id in moving if face_id not in seqs), None)
                if missing is not None:
                    raise FaceNotFound(f"collection {collection!r} has no face {missing!r}")
                if person_id is None:
                    person_id = people_rows.new_person_id()
                    db.execute(
                        "INSERT INTO people (collection_id, person_id, created_at) VALUES (?, ?, ?)",
                        (target.id, person_id, _micros(datetime.now(UTC))),
                    )
                row = db.execute(PERSON, (target.id, person_id)).fetchone()
                if row is None:
                    raise PersonNotFound(f"collection {collection!r} has no person {person_id!r}")
                # Shaped by hand: the person and those the faces leave are kept (before they move).
                db.execute(KEEP_PEOPLE_OF, (json.dumps([seqs[face_id] for face_id in moving]), row[0]))
                db.execute(BUMP_PEOPLE_REVISION, (target.id,))
                db.executemany(JOIN_PERSON, [(seqs[face_id], row[0]) for face_id in moving])
            return self._person(db, target, person_id)[0]

    def merge_people(self, collection: str, person_id: str, other_id: str) -> PersonInfo:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                kept, other = (self._person_row(db, target, person) for person in (person_id, other_id))
                if kept == other:
                    raise InvalidInput("a person cannot be merged with itself")
                check_merge(*(self._subjects_of(db, person) for person in (kept, other)))
                db.execute("UPDATE person_faces SET person_ref = ? WHERE person_ref = ?", (kept, other))
                db.execute("UPDATE people SET kept = 1 WHERE id = ?", (kept,))
                db.execute(BUMP_PEOPLE_REVISION, (target.id,))
            return self._person(db, target, person_id)[0]

    def refuse_face(self, collection: str, person_id: str, face_id: str) -> PersonInfo | None:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                person = self._person_row(db, target, person_id)
                row = db.execute(
                    "SELECT f.seq, f.subject_id," + FACES + " JOIN person_faces pf ON pf.face_seq = f.seq"
                    " WHERE f.face_id = ? AND f.collection_id = ? AND pf.person_ref = ?",
                    (face_id, target.id, person),
                ).fetchone()
                if row is None:
                    raise FaceNotFound(f"person {person_id!r} has no face {face_id!r}")
                unlabel = unlabels_on_refusal(_record(row[2:], target.dimension))
                if unlabel:  # back to an unlabelled photo face; its subject goes with its last face
                    db.execute("UPDATE faces SET subject_id = NULL WHERE seq = ?", (row[0],))
                    db.execute(
                        "DELETE FROM subjects WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = ?)",
                        (row[1], row[1]),
                    )
                db.execute(
                    "INSERT OR IGNORE INTO person_refusals (face_seq, other_seq)"
                    " SELECT min(?1, face_seq), max(?1, face_seq) FROM person_faces WHERE person_ref = ?2"
                    " AND face_seq != ?1",
                    (row[0], person),
                )
                db.execute("DELETE FROM person_faces WHERE face_seq = ?", (row[0],))
                db.execute(BUMP_PEOPLE_REVISION, (target.id,))
                left = db.execute("SELECT 1 FROM people WHERE id = ?", (person,)).fetchone()
            if unlabel:  # after the commit, as a delete: subject search no longer finds it
                target.matrix.remove_face(face_id)
                target.unlabelled += 1
                self._forget_deleted(db)
            return None if left is None else self._person(db, target, person_id)[0]

    def delete_person(self, collection: str, person_id: str) -> int:
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                person = self._person_row(db, target, person_id)
                faces = db.execute(
                    "SELECT f.seq, f.face_id, f.subject_id, f.photo_ref FROM faces f"
                    " JOIN person_faces pf ON pf.face_seq = f.seq WHERE pf.person_ref = ?",
                    (person,),
                ).fetchall()
                # Each face's delete cascades to its membership and corrections; the trigger drops the
                # emptied person. Its photo stays, with its other faces.
                db.executemany("DELETE FROM faces WHERE seq = ?", [(seq,) for seq, *_ in faces])
                db.execute(BUMP_PEOPLE_REVISION, (target.id,))
                subjects = sorted({subject for _, _, subject, _ in faces if subject is not None})
                db.executemany(  # a subject left with no face goes, as when its last face is deleted
                    "DELETE FROM subjects WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE subject_id = ?)",
                    [(subject, subject) for subject in subjects],
                )
            # One pass over each matrix for all of them (a face at a time would scan it per face).
            labelled = [face_id for _, face_id, subject, _ in faces if subject is not None]
            target.matrix.remove_faces(labelled)
            target.by_photo.remove_faces([face_id for _, face_id, _, photo in faces if photo is not None])
            target.unlabelled -= len(faces) - len(labelled)
            self._forget_deleted(db)
            return len(faces)

    def replace_people(
        self,
        collection: str,
        groups: Sequence[Sequence[str]],
        considered: Collection[str],
        based_on: int | None = None,
    ) -> int | None:
        people_rows.check_groups(groups)
        with self._writing() as db:
            target = self._get(collection)
            with _transaction(db):
                if based_on is not None and db.execute(PEOPLE_REVISION, (target.id,)).fetchone()[0] != based_on:
                    return None  # corrected since the pass read it: its groups would undo that
                old = dict(db.execute(MEMBERSHIPS, (target.id,)).fetchall())
                was_kept = set(dict(db.execute(KEPT_MEMBERSHIPS, (target.id,)).fetchall()).values())
                wanted = [face_id for group in groups for face_id in group] + list(old)
                seqs = dict(db.execute(FACE_SEQS, (json.dumps(wanted), target.id)).fetchall())
                kept = [[face_id for face_id in group if face_id in seqs] for group in groups]
                kept = [group for group in kept if group]
                ids = people_rows.carried_ids(kept, old, was_kept)
                kept = people_rows.with_unread_faces(kept, ids, old, considered)
                created = dict(
                    db.execute("SELECT person_id, created_at FROM people WHERE collection_id = ?", (target.id,))
                )
                db.execute("DELETE FROM people WHERE collection_id = ?", (target.id,))
                now = _micros(datetime.now(UTC))
                for person_id, group in zip(ids, kept, strict=True):
                    ref = db.execute(
                        "INSERT INTO people (collection_id, person_id, created_at, kept) VALUES (?, ?, ?, ?)"
                        " RETURNING id",
                        (target.id, person_id, created.get(person_id, now), int(person_id in was_kept)),
                    ).fetchone()[0]
                    db.executemany(JOIN_PERSON, [(seqs[face_id], ref) for face_id in group])
            return len(ids)

    # --- re-cluster jobs (the ClusterJobStore port)

    def claim_cluster_job(self, job: ClusterJob, stale_before: datetime) -> ClusterJob:
        with self._writing() as db:
            target = self._get(job.collection)
            with _transaction(db):
                row = db.execute(CLUSTER_JOB, (target.id,)).fetchone()
                held = None if row is None else job_rows.job(target.name, row, _moment)
                if held is not None and held.active and held.heartbeat_at >= stale_before:
                    return held
                db.execute(SAVE_CLUSTER_JOB, (target.id, *job_rows.values(job, _micros)))
            return job

    def save_cluster_job(self, job: ClusterJob) -> bool:
        with self._writing() as db:
            target = self._collections.get(job.collection)
            if target is None:
                return False
            with _transaction(db):
                row = db.execute("SELECT job_id FROM cluster_jobs WHERE collection_id = ?", (target.id,)).fetchone()
                if row is None or row[0] != job.job_id:
                    return False
                db.execute(SAVE_CLUSTER_JOB, (target.id, *job_rows.values(job, _micros)))
            return True

    def cluster_job(self, collection: str) -> ClusterJob | None:
        with self._reading() as db:
            target = self._get(collection)
            row = db.execute(CLUSTER_JOB, (target.id,)).fetchone()
            return None if row is None else job_rows.job(target.name, row, _moment)

    @staticmethod
    def _subjects_of(db: sqlite3.Connection, person: int) -> set[str]:
        return {
            row[0]
            for row in db.execute(
                "SELECT DISTINCT s.external_id FROM person_faces pf JOIN faces f ON f.seq = pf.face_seq"
                " JOIN subjects s ON s.id = f.subject_id WHERE pf.person_ref = ?",
                (person,),
            )
        }

    @staticmethod
    def _person_row(db: sqlite3.Connection, target: SqliteCollection, person_id: str) -> int:
        row = db.execute(PERSON, (target.id, person_id)).fetchone()
        if row is None:
            raise PersonNotFound(f"collection {target.name!r} has no person {person_id!r}")
        return int(row[0])

    @staticmethod
    def _person(
        db: sqlite3.Connection, target: SqliteCollection, person_id: str
    ) -> tuple[PersonInfo, list[FaceRecord]]:
        row = db.execute(PERSON, (target.id, person_id)).fetchone()
        if row is None:
            raise PersonNotFound(f"collection {target.name!r} has no person {person_id!r}")
        faces = [_record(face, target.dimension) for face in db.execute(PERSON_FACES, (row[0],))]
        shown = people_rows.representative(faces)
        return PersonInfo(person_id, len(faces), _moment(row[1]), shown, bool(row[2])), faces

    def health(self) -> StoreHealth:
        quarantined = tuple(
            QuarantinedCollection(name, reason) for name, (_, reason) in sorted(self._quarantined.items())
        )
        faces = sum(collection.faces for collection in list(self._collections.values()))
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
    ) -> SqliteCollection:
        if isinstance(created_at, bool) or not isinstance(created_at, int):
            raise CollectionUnavailable("its creation time is not a timestamp")
        return load_collection(self._db, cid, name, model_id, dimension, threshold, _moment(created_at))

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

    def _get(self, name: str) -> SqliteCollection:
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


def _insert_faces(
    db: sqlite3.Connection,
    target: SqliteCollection,
    faces: Sequence[FaceRecord],
    subject_ids: Mapping[str | None, int],
    photo_refs: Mapping[str, int],
) -> None:
    """Faces whose subjects and photos have their rows (`subject_ids`, `photo_refs`: their row ids)."""
    db.executemany(
        INSERT_FACE,
        [
            (
                face.face_id,
                target.id,
                None if face.external_id is None else subject_ids[face.external_id],
                None if face.photo_id is None else photo_refs[face.photo_id],
                face.source_digest,
                *(face.bbox or (None, None, None, None)),
                face.confidence,
                _micros(face.created_at),
                face.embedding.tobytes(),
                landmarks_text(face.landmarks),
                quality_text(face.quality),
            )
            for face in faces
        ],
    )


def _stored(face: FaceRecord, dimension: int) -> FaceRecord:
    """The face as this store reads it back: checked, its time in UTC to the microsecond."""
    return replace(checks.stored(face, dimension), created_at=_moment(_micros(face.created_at)))


def _record(row: Sequence[Any], dimension: int) -> FaceRecord:
    face_id, external_id, blob, *box_and_confidence, digest, created_at, landmarks, quality, photo_id = row
    embedding = np.frombuffer(blob, dtype=np.float32).copy()
    if embedding.shape[0] != dimension:
        raise StoreUnavailable("the SQLite gallery holds a vector of the wrong size")
    moment = _moment(created_at)
    values = (face_id, external_id, embedding, *box_and_confidence, digest, moment, landmarks, quality, photo_id)
    return face_record(values)
