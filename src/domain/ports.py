"""The ports: what the use cases need from the outside world, and nothing about how it is done."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.cluster_jobs import ClusterJob
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
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
from domain.model import DetectedFace, EmbeddingModel, Image, Pixels, Vector
from domain.people import Neighbours
from domain.quality import QualityMeasures


class ImageDecoder(Protocol):
    """Turns the bytes a caller sent into an `Image`, or raises a domain error saying why it cannot."""

    def decode(self, data: bytes) -> Image: ...


class FaceDetector(Protocol):
    """Finds faces in an image."""

    def detect(self, image: Image) -> list[DetectedFace]:
        """Every face found, largest first, boxes and landmarks in the image's own pixels."""
        ...


class Embedder(Protocol):
    """Turns detected faces into identity embeddings."""

    @property
    def model(self) -> EmbeddingModel: ...

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        """One L2-normalised vector of `model.dimension` floats per face, in the order given."""
        ...

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        """Each face as the recogniser reads it (for ArcFace, the 5-point aligned crop), in the order
        given: `embed` is `embed_aligned(align(...))`, and the quality meter reads the same crops."""
        ...

    def embed_aligned(self, crops: Sequence[Pixels]) -> list[Vector]:
        """`embed` for crops `align` made (of any images), run through the model together."""
        ...

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        """`embed` for several images at once, so the model can run all their faces together."""
        ...


class QualityMeter(Protocol):
    """Measures what decides a face's quality (domain/quality.py): size, pose, sharpness, exposure,
    compression, the detector's confidence."""

    def measure(self, image: Image, faces: Sequence[DetectedFace], crops: Sequence[Pixels]) -> list[QualityMeasures]:
        """One set of measures per face, in the order given; `crops` are the faces' crops as the
        embedder's `align` made them (reused, never aligned twice), or as this meter's `align` made them."""
        ...

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        """Crops for `measure` of faces no embedder aligned: the meter may warp only what it reads."""
        ...


class Similarity(Protocol):
    """Scores how alike embeddings are: higher means more likely the same person."""

    def scores(self, probe: Vector, candidates: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """`candidates` has shape (n, d); returns n scores."""
        ...


class ServiceObserver(Protocol):
    """Where the use cases report for monitoring: how long each stage took, how many faces an image held."""

    def stage(self, name: str, seconds: float) -> None: ...

    def faces(self, count: int) -> None: ...


class FaceGallery(Protocol):
    """Where enrolled faces are kept and searched (SQLite, PostgreSQL + pgvector, memory).

    Every method is synchronous, thread-safe and durable when it returns: a face `add_face` returned
    survives a crash; one `delete_*` removed is gone from disk and memory. Unknown names raise
    CollectionNotFound / SubjectNotFound / FaceNotFound; a database that fails raises
    StoreUnavailable (naming no file, host or user). Nothing is written that the store could not
    read back and serve; a collection read back broken anyway is quarantined: left out of
    `collections`, listed by `health`, CollectionUnavailable to every call but `delete_collection`.
    Limits are the store's `GalleryLimits`, enforced atomically with the write
    (GalleryLimitExceeded with code `collection_limit`, `subject_limit`, `subject_face_limit` or
    `collection_face_limit`).

    A face is labelled (its `external_id`: a subject's), from a photo (its `photo_id`), or both.
    Subject search, `subjects` and `subject` see labelled faces only; photo search sees faces with a
    photo id only; `faces` (export) and the collection's `faces` count see every face.
    """

    @property
    def kind(self) -> str:
        """ "sqlite", "postgresql" or "memory"."""
        ...

    def create_collection(self, name: str, model_id: str, dimension: int, threshold: float) -> CollectionInfo:
        """Raises CollectionExists, or GalleryLimitExceeded (`collection_limit`)."""
        ...

    def collection(self, name: str) -> CollectionInfo: ...

    def collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        ...

    def delete_collection(self, name: str) -> None:
        """The collection with every subject and face in it."""
        ...

    def add_face(self, collection: str, face: FaceRecord) -> tuple[FaceRecord, bool]:
        """Store `face` (creating its subject on its first face) and return it with False; or, when
        the subject already has a face with the same `source_digest`, store nothing and return that
        face with True. Concurrent calls for one subject neither lose nor duplicate faces."""
        ...

    def add_faces(self, collection: str, faces: Sequence[FaceRecord]) -> list[tuple[FaceRecord, bool]]:
        """`add_face` for many faces in one transaction (imports), each answered as `add_face` would."""
        ...

    def import_collection(
        self, name: str, model_id: str, dimension: int, threshold: float, faces: Iterable[FaceRecord]
    ) -> ImportOutcome:
        """In one transaction: the collection (created with these values when it does not exist; one of
        another model or dimension raises CollectionModelMismatch) and `faces`, added as `add_faces`
        adds them. Any error, the store's or one `faces` raises while it is read, leaves the store as
        it was: nothing of the import is kept, even through a crash."""
        ...

    def subjects(self, collection: str, after: str | None, limit: int) -> list[SubjectInfo]:
        """Subjects ordered by external_id, those strictly after `after` (a cursor), at most `limit`."""
        ...

    def subject(self, collection: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        """The subject and its faces, oldest first."""
        ...

    def delete_subject(self, collection: str, external_id: str) -> int:
        """Remove the subject and all its faces; how many faces were removed."""
        ...

    def delete_face(self, collection: str, face_id: str) -> FaceRecord:
        """Remove one face (and its subject, when that was its last face); the face removed."""
        ...

    def search(
        self, collection: str, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> SearchOutcome:
        """For each unit row of `probes` (shape (q, dimension)), the `top_k` subjects most similar to
        it by cosine, each with its best face. `external_id` restricts the search to one subject."""
        ...

    def add_photo(
        self, collection: str, photo: PhotoInfo, faces: Sequence[FaceRecord]
    ) -> tuple[PhotoInfo, list[FaceRecord], bool]:
        """Store the photo (`photo.faces` is ignored) with `faces` (each of them with its photo id,
        unlabelled), in one transaction, and return it with its faces and False; or, when the photo id
        is stored already from the same `source_digest`, store nothing and return the stored photo and
        faces with True. The id stored from other bytes: PhotoExists. GalleryLimitExceeded
        (`collection_face_limit`) when its faces would pass the limit: then nothing is stored."""
        ...

    def photos(self, collection: str, after: str | None, limit: int) -> list[PhotoInfo]:
        """Photos ordered by photo id, those strictly after `after` (a cursor), at most `limit`."""
        ...

    def photo(self, collection: str, photo_id: str) -> tuple[PhotoInfo, list[FaceRecord]]:
        """The photo and its faces, in the order they were stored; PhotoNotFound."""
        ...

    def delete_photo(self, collection: str, photo_id: str) -> int:
        """Remove the photo and every face of it (a labelled one too; a subject left with no face
        goes), durably, as `delete_subject`; how many faces were removed. PhotoNotFound."""
        ...

    def search_photos(
        self, collection: str, probe: Vector, min_similarity: float, top_k: int, after: PhotoCursor | None
    ) -> PhotoSearchOutcome:
        """The photos whose most similar face (cosine with the unit `probe`) reaches `min_similarity`,
        each once with that face, ranked by similarity descending then photo id: the `top_k` after
        `after`, and how many there are on every page."""
        ...

    def search_photos_many(
        self, collection: str, probes: npt.NDArray[np.float32], min_similarity: float, top_k: int
    ) -> list[list[PhotoHit]]:
        """`search_photos`' first page (no cursor) for each probe, a row of `probes` (a new photo's
        faces): the same hits in the same order as one search per probe, found together (one pass
        over the faces, or one round trip) where the store can."""
        ...

    def label_faces(self, collection: str, face_ids: Sequence[str], external_id: str) -> int:
        """Name faces (a person's): the unlabelled ones become the subject's (created when new), in one
        transaction, so subject search, verify and `subject` see them from then on; they stay their
        photo's. A face labelled already is left as it is; of faces of one source (each other's, or one
        the subject holds) the first only (`plan_labels`: one face per source per subject).
        GalleryLimitExceeded (`subject_limit`, `subject_face_limit`), FaceNotFound, or
        PeopleNamedDifferently when a face is labelled to another subject (checked in the same
        transaction, so parallel namings cannot put two subjects in one person): nothing changes.
        A store with people moves the collection's people revision (`people_revision`) in the same
        transaction. How many faces were labelled."""
        ...

    def faces(self, collection: str) -> Iterator[FaceRecord]:
        """Every face of the collection, in a stable order, streamed in bounded memory (export)."""
        ...

    def health(self) -> StoreHealth: ...

    def close(self) -> None: ...


class PeopleStore(Protocol):
    """Where a collection's people are kept (domain/people.py groups faces into them): each face is in
    at most one person, and "not this person" corrections are kept as pairs of faces never to be one
    person. The SQLite, PostgreSQL and memory galleries implement it beside FaceGallery, in the same
    database: deleting a face (by itself, with its photo or with its subject) takes it out of its
    person and its corrections, and a person left with no face goes, in the same transaction.

    Synchronous, thread-safe and durable when it returns, as FaceGallery. Unknown names raise
    CollectionNotFound / PersonNotFound / FaceNotFound.
    """

    def people(self, collection: str, after: str | None, limit: int) -> list[PersonInfo]:
        """People ordered by person id, those strictly after `after` (a cursor), at most `limit`."""
        ...

    def person(self, collection: str, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        """The person and its faces, in the order they were stored; PersonNotFound."""
        ...

    def memberships(self, collection: str) -> dict[str, str]:
        """Face id -> person id, for every face in a person."""
        ...

    def people_of(self, collection: str, face_ids: Sequence[str]) -> dict[str, str]:
        """Face id -> person id, for those of these faces in a person."""
        ...

    def kept_memberships(self, collection: str) -> dict[str, str]:
        """Face id -> person id, for every face in a kept person: one a user shaped by hand (`merge_people`
        keeps the merged person, `move_faces` the people it moved faces out of and into). A re-cluster
        keeps each one whole and apart from the others (domain/people.py's anchors)."""
        ...

    def join_people(self, collection: str, joins: Mapping[str, str]) -> int:
        """Each face (face id -> person id) into that person, out of any other (one left empty goes),
        in one transaction: a new photo's faces joining people. A face or a person no longer stored (a
        delete or a full pass ran meanwhile) is skipped; how many faces joined."""
        ...

    def refusals(self, collection: str) -> list[tuple[str, str]]:
        """The pairs of faces corrections keep apart (face ids, the smaller first), sorted."""
        ...

    def people_revision(self, collection: str) -> int:
        """The collection's people revision: every correction (`move_faces`, `merge_people`,
        `refuse_face`, `delete_person`, `label_faces`) moves it in its own transaction, so a full pass
        that read it before its constraints knows whether they changed while it ran (`replace_people`'s
        `based_on`). New faces joining people (`join_people`) leave it."""
        ...

    def move_faces(self, collection: str, face_ids: Sequence[str], person_id: str | None) -> PersonInfo:
        """Put the faces (at least one) into the person, or into a new person when `person_id` is None,
        taking them out of the people they were in (one left empty goes); the person after. The person
        and those left behind become kept (`kept_memberships`), in the same transaction.
        FaceNotFound (nothing changes) when a face is not in the collection; PersonNotFound."""
        ...

    def merge_people(self, collection: str, person_id: str, other_id: str) -> PersonInfo:
        """Every face of `other_id` into `person_id`; `other_id` goes. PersonNotFound; InvalidInput
        when they are the same person; PeopleNamedDifferently (nothing changes) when one holds a face
        of a subject and the other of another (`check_merge`, domain/additions.py). Faces stay as
        labelled: an unnamed person's faces merged into a named one stay unlabelled. The person becomes
        kept (`kept_memberships`), in the same transaction."""
        ...

    def refuse_face(self, collection: str, person_id: str, face_id: str) -> PersonInfo | None:
        """ "Not this person": the face leaves the person, and is kept apart from each of the person's
        other faces from now on (by a re-cluster too); a photo face naming labelled is unlabelled in
        the same transaction (out of its subject, which goes with its last face, as `delete_face`
        takes it; `unlabels_on_refusal`, domain/additions.py); the person after, or None when it went.
        PersonNotFound; FaceNotFound when the face is not the person's; EnrolledFaceRefused (nothing
        changes) for a face enrolled to a subject, not from a photo."""
        ...

    def delete_person(self, collection: str, person_id: str) -> int:
        """Forget the person and every face in it, in one transaction, as `delete_face` would each:
        gone from the store, subject and photo search, export and corrections, durably (a subject left
        with no face goes; a photo stays, with its other faces). How many faces went. PersonNotFound."""
        ...

    def replace_people(
        self,
        collection: str,
        groups: Sequence[Sequence[str]],
        considered: Collection[str],
        based_on: int | None = None,
    ) -> int | None:
        """A full pass's outcome: the collection's people become `groups` (face ids; a face the pass
        `considered` in no group is in no person), in one transaction; corrections stay. A group keeps
        the id of the old person that held most of its faces (ties: the smaller id) when no earlier
        group took it (a kept person's id first: `people_rows.carried_ids`), so a re-cluster that
        changes little keeps people's ids, and a kept person's id keeps it kept; a face the pass did not
        consider (stored while it ran) stays in its person when that person's id lives on. Face ids no
        longer stored are skipped. How many people; None, storing nothing, when `based_on` (the
        `people_revision` the pass read before its constraints) is no longer the collection's: a
        correction landed meanwhile, and the groups would undo it (checked in the same transaction)."""
        ...


class ClusterJobStore(Protocol):
    """Each collection's last re-cluster job (domain/cluster_jobs.py), kept beside its people so that
    every replica on one database sees it and one replica at a time runs it. A collection's delete
    takes its job with it.

    Synchronous, thread-safe and durable when it returns. CollectionNotFound for an unknown name.
    """

    def claim_cluster_job(self, job: ClusterJob, stale_before: datetime) -> ClusterJob:
        """Record `job` (queued) as its collection's job, unless the collection's job is queued or
        running with a heartbeat at or after `stale_before`: atomic, across replicas too. The job that
        stands after: `job` when it was recorded, else the one in its way."""
        ...

    def save_cluster_job(self, job: ClusterJob) -> bool:
        """Write the job's state, stage, progress, heartbeat, end, outcome and error, if it is still
        its collection's job (the same job id); whether it was (False: a newer claim replaced it, or
        the collection went)."""
        ...

    def cluster_job(self, collection: str) -> ClusterJob | None:
        """The collection's last job as stored (None: never one), whatever its heartbeat."""
        ...


class PeopleGallery(FaceGallery, PeopleStore, ClusterJobStore, Protocol):
    """Every store is all three: its people and re-cluster jobs live beside its faces, in the same database."""


class NeighbourSearch(Protocol):
    """Each face's nearest other faces, the graph domain/people.py groups faces by."""

    def neighbours(self, vectors: npt.NDArray[np.float32], k: int) -> Neighbours:
        """For every row of `vectors` (L2-normalised) its k most similar other rows, most similar
        first (-1 and similarity -1 past the last found)."""
        ...
