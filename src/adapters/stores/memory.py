"""A gallery in the process's memory: dictionaries and two matrices per collection (its labelled
faces for subject search, its photos' faces for photo search), searched exactly.

Nothing survives the process. For the fake backend, tests, and trying the service out.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from adapters.stores import checks, people_rows
from adapters.stores.matrix import FaceMatrix
from adapters.stores.matrix_collection import MatrixCollection
from domain.additions import (
    StoredState,
    check_collection_faces,
    check_merge,
    check_new_collection,
    plan_additions,
    plan_labels,
    unlabels_on_refusal,
)
from domain.cluster_jobs import ClusterJob
from domain.errors import (
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    FaceNotFound,
    InvalidInput,
    PersonNotFound,
    PhotoExists,
    PhotoNotFound,
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
    SearchOutcome,
    StoreHealth,
    SubjectInfo,
)
from domain.model import Vector


@dataclass
class _Subject:
    created_at: datetime
    faces: dict[str, FaceRecord] = field(default_factory=dict)  # by face id, in enrolment order
    digests: dict[str, str] = field(default_factory=dict)  # source digest -> face id


@dataclass
class _Photo:
    source_digest: str
    created_at: datetime
    faces: list[str] = field(default_factory=list)  # face ids, in the order stored

    def info(self, photo_id: str) -> PhotoInfo:
        return PhotoInfo(photo_id, self.source_digest, len(self.faces), self.created_at)


@dataclass
class _Collection(MatrixCollection):
    subjects: dict[str, _Subject] = field(default_factory=dict)
    records: dict[str, FaceRecord] = field(default_factory=dict)  # every face by id, in the order stored
    photos: dict[str, _Photo] = field(default_factory=dict)
    photo_matrix: FaceMatrix | None = None  # the faces with a photo id, grouped by photo
    people: dict[str, datetime] = field(default_factory=dict)  # person id -> created at
    person_of: dict[str, str] = field(default_factory=dict)  # face id -> person id
    kept: set[str] = field(default_factory=set)  # the people a user shaped by hand (merge, split)
    apart: set[tuple[str, str]] = field(default_factory=set)  # corrections: face pairs, smaller id first
    cluster_job: ClusterJob | None = None  # the last re-cluster's
    people_revision: int = 0  # moved by every people correction (PeopleStore.people_revision)

    def forget_in_people(self, face_id: str) -> None:
        """A face being deleted out of its person (which goes with its last face) and its corrections."""
        person = self.person_of.pop(face_id, None)
        if person is not None and person not in self.person_of.values():
            del self.people[person]
            self.kept.discard(person)
        self.apart = {pair for pair in self.apart if face_id not in pair}

    def __post_init__(self) -> None:
        self.photo_matrix = FaceMatrix(self.dimension)

    @property
    def by_photo(self) -> FaceMatrix:
        assert self.photo_matrix is not None
        return self.photo_matrix

    def info(self) -> CollectionInfo:
        return replace(super().info(), faces=len(self.records), photos=len(self.photos))


def _stored_state(target: _Collection, faces: Sequence[FaceRecord]) -> StoredState:
    """What the add-faces rule needs to know of `target` for this batch."""
    held = {
        face.external_id: target.subjects[face.external_id]
        for face in faces
        if face.external_id is not None and face.external_id in target.subjects
    }
    by_source = {
        (external_id, face.source_digest): subject.faces[subject.digests[face.source_digest]]
        for face in faces
        if (external_id := face.external_id) is not None
        and (subject := held.get(external_id)) is not None
        and face.source_digest in subject.digests
    }
    subject_faces = {external_id: len(subject.faces) for external_id, subject in held.items()}
    photos = {
        face.photo_id: photo.source_digest
        for face in faces
        if face.photo_id is not None and (photo := target.photos.get(face.photo_id)) is not None
    }
    return StoredState(len(target.subjects), len(target.records), subject_faces, by_source, photos)


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
            collection.by_photo.clear()

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
            assert first.external_id is not None
            target.subjects[first.external_id] = _Subject(created_at=first.created_at)
        for first in plan.new_photos:
            assert first.photo_id is not None
            target.photos[first.photo_id] = _Photo(first.source_digest, first.created_at)
        self._store(target, plan.new_faces)
        return plan.results

    @staticmethod
    def _store(target: _Collection, faces: Sequence[FaceRecord]) -> None:
        """Faces whose subjects and photos exist: into the dictionaries and the matrices."""
        labelled = [face for face in faces if face.external_id is not None]
        pictured = [face for face in faces if face.photo_id is not None]
        for face in faces:
            target.records[face.face_id] = face
            if face.external_id is not None:
                subject = target.subjects[face.external_id]
                subject.faces[face.face_id] = face
                subject.digests[face.source_digest] = face.face_id
            if face.photo_id is not None:
                target.photos[face.photo_id].faces.append(face.face_id)
        for matrix, group, key in ((target.matrix, labelled, "external_id"), (target.by_photo, pictured, "photo_id")):
            if group:
                matrix.append(
                    [face.face_id for face in group],
                    [getattr(face, key) for face in group],
                    np.stack([face.embedding for face in group]),
                )

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
            for face in subject.faces.values():
                self._forget_face(target, face)
            target.matrix.remove_subject(external_id)
            return len(subject.faces)

    @staticmethod
    def _forget_face(target: _Collection, face: FaceRecord) -> None:
        """`face` (being deleted) out of `records`, and out of its photo and the photo matrix if it has one
        (its subject is the caller's)."""
        del target.records[face.face_id]
        target.forget_in_people(face.face_id)
        if face.photo_id is not None:
            target.photos[face.photo_id].faces.remove(face.face_id)
            target.by_photo.remove_face(face.face_id)

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        with self._lock:
            target = self._get(collection)
            face = target.records.get(face_id)
            if face is None:
                raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
            self._forget_face(target, face)
            if face.external_id is not None:
                self._forget_labelled_face(target, face)
            return face

    @staticmethod
    def _forget_labelled_face(target: _Collection, face: FaceRecord) -> None:
        """A labelled face (being deleted or unlabelled) out of its subject (which goes with its last face)
        and the matrix."""
        assert face.external_id is not None
        subject = target.subjects[face.external_id]
        del subject.faces[face.face_id]
        del subject.digests[face.source_digest]
        if not subject.faces:
            del target.subjects[face.external_id]
        target.matrix.remove_face(face.face_id)

    # --- photos

    def add_photo(
        self, collection: str, photo: PhotoInfo, faces: Sequence[FaceRecord]
    ) -> tuple[PhotoInfo, list[FaceRecord], bool]:
        with self._lock:
            target = self._get(collection)
            records = checks.photo_faces(photo, faces, target.dimension)
            stored = target.photos.get(photo.photo_id)
            if stored is not None:
                if stored.source_digest != photo.source_digest:
                    raise PhotoExists(f"photo {photo.photo_id!r} was indexed from other bytes; delete it first")
                return stored.info(photo.photo_id), [target.records[face_id] for face_id in stored.faces], True
            check_collection_faces(self._limits, collection, len(target.records), len(records))
            target.photos[photo.photo_id] = _Photo(photo.source_digest, photo.created_at)
            self._store(target, records)
            return target.photos[photo.photo_id].info(photo.photo_id), records, False

    def photos(self, collection: str, after: str | None, limit: int) -> list[PhotoInfo]:
        with self._lock:
            target = self._get(collection)
            names = sorted(name for name in target.photos if after is None or name > after)[: max(0, limit)]
            return [target.photos[name].info(name) for name in names]

    def photo(self, collection: str, photo_id: str) -> tuple[PhotoInfo, list[FaceRecord]]:
        with self._lock:
            target = self._get(collection)
            stored = self._photo(target, photo_id)
            return stored.info(photo_id), [target.records[face_id] for face_id in stored.faces]

    def delete_photo(self, collection: str, photo_id: str) -> int:
        with self._lock:
            target = self._get(collection)
            stored = self._photo(target, photo_id)
            faces = [target.records[face_id] for face_id in stored.faces]
            for face in faces:
                del target.records[face.face_id]
                target.forget_in_people(face.face_id)
                if face.external_id is not None:
                    self._forget_labelled_face(target, face)
            del target.photos[photo_id]
            target.by_photo.remove_subject(photo_id)
            return len(faces)

    def search_photos(
        self, collection: str, probe: Vector, min_similarity: float, top_k: int, after: PhotoCursor | None
    ) -> PhotoSearchOutcome:
        with self._lock:
            target = self._get(collection)
        matrix = checks.probes(probe, target.dimension, top_k)
        cursor = None if after is None else (after.similarity, after.photo_id)
        hits, count, _ = target.by_photo.groups_reaching(matrix[0], min_similarity, top_k, cursor)
        with self._lock:
            found = [(hit, target.records.get(hit.face_id)) for hit in hits]
            searched = len(target.records)
        return PhotoSearchOutcome(
            [
                PhotoHit(hit.external_id, hit.face_id, hit.similarity, face.external_id, face.bbox)
                for hit, face in found
                if face is not None  # deleted meanwhile
            ],
            count,
            "exact",
            searched,
        )

    def search_photos_many(
        self, collection: str, probes: npt.NDArray[np.float32], min_similarity: float, top_k: int
    ) -> list[list[PhotoHit]]:
        with self._lock:
            target = self._get(collection)
        matrix = checks.probes(probes, target.dimension, top_k)
        hits = target.by_photo.groups_reaching_many(matrix, min_similarity, top_k)
        with self._lock:
            return [
                [
                    PhotoHit(hit.external_id, hit.face_id, hit.similarity, face.external_id, face.bbox)
                    for hit in row
                    if (face := target.records.get(hit.face_id)) is not None  # deleted meanwhile
                ]
                for row in hits
            ]

    @staticmethod
    def _photo(collection: _Collection, photo_id: str) -> _Photo:
        stored = collection.photos.get(photo_id)
        if stored is None:
            raise PhotoNotFound(f"collection {collection.name!r} has no photo {photo_id!r}")
        return stored

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
            records = list(target.records.values())
        return iter(records)

    def health(self) -> StoreHealth:
        with self._lock:
            faces = sum(len(collection.records) for collection in self._collections.values())
        return StoreHealth(store="memory", ok=True, detail=f"{len(self._collections)} collections, {faces} faces")

    def close(self) -> None:
        """Nothing to release; the data stays until the process ends."""

    def label_faces(self, collection: str, face_ids: Sequence[str], external_id: str) -> int:
        with self._lock:
            target = self._get(collection)
            faces = []
            for face_id in dict.fromkeys(face_ids):
                face = target.records.get(face_id)
                if face is None:
                    raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
                faces.append(face)
            subject = target.subjects.get(external_id)
            chosen = plan_labels(
                collection,
                faces,
                external_id,
                self._limits,
                subject_exists=subject is not None,
                subjects=len(target.subjects),
                subject_faces=0 if subject is None else len(subject.faces),
                held_digests=set() if subject is None else set(subject.digests),
            )
            if not chosen:
                return 0
            if subject is None:
                subject = target.subjects[external_id] = _Subject(created_at=checks.now())
            target.people_revision += 1
            for face in chosen:
                target.records[face.face_id] = face
                subject.faces[face.face_id] = face
                subject.digests[face.source_digest] = face.face_id
            target.matrix.append(
                [face.face_id for face in chosen], [external_id] * len(chosen), np.stack([f.embedding for f in chosen])
            )
            return len(chosen)

    # --- people (the PeopleStore port)

    def people(self, collection: str, after: str | None, limit: int) -> list[PersonInfo]:
        with self._lock:
            target = self._get(collection)
            ids = sorted(person for person in target.people if after is None or person > after)[: max(0, limit)]
            return [self._person(target, person)[0] for person in ids]

    def person(self, collection: str, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        with self._lock:
            return self._person(self._get(collection), person_id)

    def memberships(self, collection: str) -> dict[str, str]:
        with self._lock:
            return dict(self._get(collection).person_of)

    def kept_memberships(self, collection: str) -> dict[str, str]:
        with self._lock:
            target = self._get(collection)
            return {face_id: person for face_id, person in target.person_of.items() if person in target.kept}

    def people_of(self, collection: str, face_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            person_of = self._get(collection).person_of
            return {face_id: person_of[face_id] for face_id in face_ids if face_id in person_of}

    def join_people(self, collection: str, joins: Mapping[str, str]) -> int:
        with self._lock:
            target = self._get(collection)
            kept = {
                face_id: person_id
                for face_id, person_id in joins.items()
                if face_id in target.records and person_id in target.people  # gone meanwhile: skipped
            }
            left = {target.person_of.get(face_id) for face_id in kept} - set(kept.values())
            target.person_of.update(kept)
            self._drop_empty(target, left)
            return len(kept)

    def refusals(self, collection: str) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._get(collection).apart)

    def people_revision(self, collection: str) -> int:
        with self._lock:
            return self._get(collection).people_revision

    def move_faces(self, collection: str, face_ids: Sequence[str], person_id: str | None) -> PersonInfo:
        with self._lock:
            target = self._get(collection)
            moving = people_rows.check_face_ids(face_ids)
            for face_id in moving:
                if face_id not in target.records:
                    raise FaceNotFound(f"collection {collection!r} has no face {face_id!r}")
            if person_id is None:
                person_id = people_rows.new_person_id()
                target.people[person_id] = datetime.now(UTC)
            elif person_id not in target.people:
                raise PersonNotFound(f"collection {collection!r} has no person {person_id!r}")
            left = {target.person_of.get(face_id) for face_id in moving} - {None, person_id}
            target.people_revision += 1
            target.kept.update({person_id} | {person for person in left if person is not None})
            for face_id in moving:
                target.person_of[face_id] = person_id
            self._drop_empty(target, left)
            return self._person(target, person_id)[0]

    def merge_people(self, collection: str, person_id: str, other_id: str) -> PersonInfo:
        with self._lock:
            target = self._get(collection)
            for person in (person_id, other_id):
                if person not in target.people:
                    raise PersonNotFound(f"collection {collection!r} has no person {person!r}")
            if person_id == other_id:
                raise InvalidInput("a person cannot be merged with itself")
            check_merge(*(self._subjects_of(target, person) for person in (person_id, other_id)))
            for face_id, person in list(target.person_of.items()):
                if person == other_id:
                    target.person_of[face_id] = person_id
            del target.people[other_id]
            target.people_revision += 1
            target.kept.discard(other_id)
            target.kept.add(person_id)
            return self._person(target, person_id)[0]

    def refuse_face(self, collection: str, person_id: str, face_id: str) -> PersonInfo | None:
        with self._lock:
            target = self._get(collection)
            if person_id not in target.people:
                raise PersonNotFound(f"collection {collection!r} has no person {person_id!r}")
            if target.person_of.get(face_id) != person_id:
                raise FaceNotFound(f"person {person_id!r} has no face {face_id!r}")
            face = target.records[face_id]
            if unlabels_on_refusal(face):
                self._forget_labelled_face(target, face)
                target.records[face_id] = replace(face, external_id=None)
            del target.person_of[face_id]
            target.people_revision += 1
            others = [other for other, person in target.person_of.items() if person == person_id]
            target.apart.update((min(face_id, other), max(face_id, other)) for other in others)
            self._drop_empty(target, {person_id})
            return self._person(target, person_id)[0] if person_id in target.people else None

    def delete_person(self, collection: str, person_id: str) -> int:
        with self._lock:
            target = self._get(collection)
            _, faces = self._person(target, person_id)
            target.people_revision += 1
            for face in faces:  # as delete_face: its photo stays, its subject goes with its last face
                self._forget_face(target, face)
                if face.external_id is not None:
                    self._forget_labelled_face(target, face)
            return len(faces)

    def replace_people(
        self,
        collection: str,
        groups: Sequence[Sequence[str]],
        considered: Collection[str],
        based_on: int | None = None,
    ) -> int | None:
        with self._lock:
            target = self._get(collection)
            people_rows.check_groups(groups)
            if based_on is not None and based_on != target.people_revision:
                return None  # corrected since the pass read it: its groups would undo that
            kept = [[face_id for face_id in group if face_id in target.records] for group in groups]
            kept = [group for group in kept if group]
            ids = people_rows.carried_ids(kept, target.person_of, target.kept)
            kept = people_rows.with_unread_faces(kept, ids, target.person_of, considered)
            now = datetime.now(UTC)
            target.people = {person: target.people.get(person, now) for person in ids}
            target.kept &= set(ids)
            target.person_of = {face_id: person for person, group in zip(ids, kept, strict=True) for face_id in group}
            return len(ids)

    # --- re-cluster jobs (the ClusterJobStore port)

    def claim_cluster_job(self, job: ClusterJob, stale_before: datetime) -> ClusterJob:
        with self._lock:
            target = self._get(job.collection)
            held = target.cluster_job
            if held is not None and held.active and held.heartbeat_at >= stale_before:
                return held
            target.cluster_job = job
            return job

    def save_cluster_job(self, job: ClusterJob) -> bool:
        with self._lock:
            target = self._collections.get(job.collection)
            if target is None or target.cluster_job is None or target.cluster_job.job_id != job.job_id:
                return False
            target.cluster_job = job
            return True

    def cluster_job(self, collection: str) -> ClusterJob | None:
        with self._lock:
            return self._get(collection).cluster_job

    @staticmethod
    def _subjects_of(target: _Collection, person_id: str) -> set[str]:
        return {
            subject
            for face_id, person in target.person_of.items()
            if person == person_id and (subject := target.records[face_id].external_id) is not None
        }

    @staticmethod
    def _drop_empty(target: _Collection, people: Iterable[str | None]) -> None:
        held = set(target.person_of.values())
        for person in people:
            if person is not None and person not in held:
                target.people.pop(person, None)
                target.kept.discard(person)

    @staticmethod
    def _person(target: _Collection, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        created_at = target.people.get(person_id)
        if created_at is None:
            raise PersonNotFound(f"the collection has no person {person_id!r}")
        faces = [face for face in target.records.values() if target.person_of.get(face.face_id) == person_id]
        info = PersonInfo(
            person_id, len(faces), created_at, people_rows.representative(faces), person_id in target.kept
        )
        return info, faces

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
