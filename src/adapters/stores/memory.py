"""A gallery in the process's memory: dictionaries and one matrix per collection, searched exactly.

Nothing survives the process. For the fake backend, tests, and trying the service out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from adapters.stores import checks
from adapters.stores.matrix import FaceMatrix
from adapters.stores.matrix_collection import MatrixCollection
from domain.additions import StoredState, check_new_collection, plan_additions
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    FaceNotFound,
    SubjectNotFound,
)
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
    GalleryLimits,
    ImportOutcome,
    SearchOutcome,
    StoreHealth,
    SubjectInfo,
)


@dataclass
class _Subject:
    created_at: datetime
    faces: dict[str, FaceRecord] = field(default_factory=dict)  # by face id, in enrolment order
    digests: dict[str, str] = field(default_factory=dict)  # source digest -> face id


@dataclass
class _Collection(MatrixCollection):
    subjects: dict[str, _Subject] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)  # face id -> external id, in enrolment order


def _stored_state(target: _Collection, faces: Sequence[FaceRecord]) -> StoredState:
    """What the add-faces rule needs to know of `target` for this batch."""
    held = {
        face.external_id: target.subjects[face.external_id] for face in faces if face.external_id in target.subjects
    }
    by_source = {
        (face.external_id, face.source_digest): subject.faces[subject.digests[face.source_digest]]
        for face in faces
        if (subject := held.get(face.external_id)) is not None and face.source_digest in subject.digests
    }
    subject_faces = {external_id: len(subject.faces) for external_id, subject in held.items()}
    return StoredState(len(target.subjects), len(target.owner), subject_faces, by_source)


def _subject_info(external_id: str, subject: _Subject) -> SubjectInfo:
    return SubjectInfo(external_id=external_id, faces=len(subject.faces), created_at=subject.created_at)


class MemoryGallery:
    """The FaceGallery port in memory; one lock for writes, searches on the matrix's read lock."""

    def __init__(self, limits: GalleryLimits) -> None:
        self._limits = limits
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}

    @property
    def kind(self) -> str:
        return "memory"

    def create_collection(self, name: str, model_id: str, dimension: int, threshold: float) -> CollectionInfo:
        checks.collection(name, model_id, dimension, threshold)
        with self._lock:
            if name in self._collections:
                raise CollectionExists(f"collection {name!r} already exists")
            check_new_collection(self._limits, len(self._collections))
            collection = _Collection(name, model_id, dimension, threshold, checks.now(), FaceMatrix(dimension))
            self._collections[name] = collection
            return collection.info()

    def collection(self, name: str) -> CollectionInfo:
        with self._lock:
            return self._get(name).info()

    def collections(self) -> list[CollectionInfo]:
        with self._lock:
            return [self._collections[name].info() for name in sorted(self._collections)]

    def delete_collection(self, name: str) -> None:
        with self._lock:
            collection = self._get(name)
            del self._collections[name]
            collection.matrix.clear()

    def add_face(self, collection: str, face: FaceRecord) -> tuple[FaceRecord, bool]:
        return self.add_faces(collection, [face])[0]

    def add_faces(self, collection: str, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        """`add_face` for many faces at once: all are stored, or, when a limit would be exceeded, none."""
        with self._lock:
            return self._add(self._get(collection), faces)

    def import_collection(
        self, name: str, model_id: str, dimension: int, threshold: float, faces: Iterable[FaceRecord]
    ) -> ImportOutcome:
        checks.collection(name, model_id, dimension, threshold)
        records = list(faces)  # read first: whatever it raises, nothing has changed
        with self._lock:
            target = self._collections.get(name)
            created = target is None
            if target is None:
                check_new_collection(self._limits, len(self._collections))
                target = _Collection(name, model_id, dimension, threshold, checks.now(), FaceMatrix(dimension))
            elif (target.model_id, target.dimension) != (model_id, dimension):
                raise CollectionModelMismatch(f"collection {name!r} holds vectors of {target.model_id}")
            results = self._add(target, records)
            self._collections[name] = target
        duplicates = sum(1 for _, duplicate in results if duplicate)
        return ImportOutcome(created, len(results) - duplicates, duplicates)

    def _add(self, target: _Collection, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        records = [checks.stored(face, target.dimension) for face in faces]
        plan = plan_additions(target.name, records, self._limits, _stored_state(target, records))
        for first in plan.new_subjects:
            target.subjects[first.external_id] = _Subject(created_at=first.created_at)
        for face in plan.new_faces:
            subject = target.subjects[face.external_id]
            subject.faces[face.face_id] = face
            subject.digests[face.source_digest] = face.face_id
            target.owner[face.face_id] = face.external_id
        if plan.new_faces:
            target.matrix.append(
                [face.face_id for face in plan.new_faces],
                [face.external_id for face in plan.new_faces],
                np.stack([face.embedding for face in plan.new_faces]),
            )
        return plan.results

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        with self._lock:
            target = self._get(collection)
            names = sorted(name for name in target.subjects if after is None or name > after)[: max(0, limit)]
            return [_subject_info(name, target.subjects[name]) for name in names]

    def subject(self, collection: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        with self._lock:
            subject = self._subject(self._get(collection), external_id)
            faces = sorted(subject.faces.values(), key=lambda face: face.created_at)  # stable: ties keep order
            return _subject_info(external_id, subject), faces

    def delete_subject(self, collection: str, external_id: str) -> int:
        with self._lock:
            target = self._get(collection)
            subject = self._subject(target, external_id)
            del target.subjects[external_id]
            for face_id in subject.faces:
                del target.owner[face_id]
            target.matrix.remove_subject(external_id)
            return len(subject.faces)

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._lock:
            target = self._get(collection)
            external_id = target.owner.pop(face_id, None)
            if external_id is None:
                raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
            subject = target.subjects[external_id]
            face = subject.faces.pop(face_id)
            del subject.digests[face.source_digest]
            if not subject.faces:
                del target.subjects[external_id]
            target.matrix.remove_face(face_id)
            return face

    def search(
        self, collection: str, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> SearchOutcome:
        with self._lock:
            target = self._get(collection)
            if external_id is not None:
                self._subject(target, external_id)
        hits, searched = target.matrix.search(checks.probes(probes, target.dimension, top_k), top_k, external_id)
        return SearchOutcome(hits=hits, method="exact", searched=searched)

    def faces(self, collection: str) -> Iterator[FaceRecord]:
        with self._lock:
            target = self._get(collection)
            records = [target.subjects[owner].faces[face_id] for face_id, owner in target.owner.items()]
        return iter(records)

    def health(self) -> StoreHealth:
        with self._lock:
            faces = sum(len(collection.owner) for collection in self._collections.values())
        return StoreHealth(store="memory", ok=True, detail=f"{len(self._collections)} collections, {faces} faces")

    def close(self) -> None:
        """Nothing to release; the data stays until the process ends."""

    def _get(self, name: str) -> _Collection:
        collection = self._collections.get(name)
        if collection is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return collection

    @staticmethod
    def _subject(collection: _Collection, external_id: str) -> _Subject:
        subject = collection.subjects.get(external_id)
        if subject is None:
            raise SubjectNotFound(f"collection {collection.name!r} has no subject {external_id!r}")
        return subject
