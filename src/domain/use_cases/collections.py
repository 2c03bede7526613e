"""Face collections: enroll people's faces under the caller's ids, identify and verify them against
a gallery, forget them on request, and move a gallery between stores.

The faces arrive already detected and embedded (an `Extraction` from the face use cases, made
wherever inference runs) or as embeddings the caller sends; these use cases own the rules that keep
a gallery trustworthy: names, model pinning, one face per source image, quality floors, limits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from domain.embeddings import checked_embedding
from domain.errors import (
    CollectionModelMismatch,
    CollectionNotFound,
    FaceServiceError,
    InvalidEmbedding,
    InvalidImport,
    InvalidInput,
)
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
    ImportOutcome,
    SearchOutcome,
    SubjectHit,
    SubjectInfo,
    collection_problem,
    face_values_problem,
    is_source_digest,
)
from domain.model import DetectedFace, EmbeddedFace, EmbeddingModel, Vector
from domain.ports import FaceGallery, NeighbourSearch, PeopleGallery
from domain.quality import DEFAULT_ENROLL_QUALITY, QualityLevel
from domain.use_cases.cluster_jobs import ClusterJobs
from domain.use_cases.faces import Extraction
from domain.use_cases.gallery_rules import (
    CollectionRules,
    MultipleFaces,
    NoFace,
    PoorFace,
    at_least,
    checked_external_id,
    checked_face_id,
    checked_name,
    checked_photo_id,
    pinned,
    poor_quality,
    stored_quality,
)
from domain.use_cases.people import People
from domain.use_cases.photos import Photos

# The rules' names stay importable from here, where callers always found them.
__all__ = [
    "DEFAULT_ENROLL_QUALITY",
    "NOTHING_KEPT",
    "CollectionHeader",
    "CollectionRules",
    "Collections",
    "Decision",
    "EnrollOptions",
    "Enrollment",
    "MultipleFaces",
    "NoFace",
    "PoorFace",
    "ProbeResult",
    "SearchResult",
    "Verification",
    "at_least",
    "checked_external_id",
    "checked_face_id",
    "checked_name",
    "checked_photo_id",
    "image_digest",
    "nothing_kept",
    "pinned",
    "poor_quality",
    "stored_quality",
    "vector_digest",
]


@dataclass(frozen=True, slots=True)
class EnrollOptions:
    largest: bool = False  # several faces: take the largest instead of refusing with multiple_faces
    min_face_size: int = 0  # pixels, the box's shorter side
    min_confidence: float = 0.0
    min_quality: QualityLevel | None = DEFAULT_ENROLL_QUALITY  # None: no quality floor


@dataclass(frozen=True, slots=True)
class Enrollment:
    face: FaceRecord
    duplicate: bool
    model_id: str  # the collection's: every vector in it comes from this model


@dataclass(frozen=True, slots=True)
class Decision:
    match: bool
    external_id: str | None
    similarity: float | None
    threshold: float


@dataclass(frozen=True, slots=True)
class ProbeResult:
    face: DetectedFace | None  # None when the probe was an embedding
    hits: list[SubjectHit]
    decision: Decision


@dataclass(frozen=True, slots=True)
class SearchResult:
    collection: CollectionInfo
    probes: list[ProbeResult]
    method: str
    searched: int
    skipped: list[DetectedFace] = dataclasses.field(default_factory=list)  # probe faces under `min_quality`


@dataclass(frozen=True, slots=True)
class Verification:
    collection: CollectionInfo
    external_id: str
    face_id: str | None
    similarity: float
    match: bool
    threshold: float


@dataclass(frozen=True, slots=True)
class CollectionHeader:
    """The first record of an export: what every face in it belongs to."""

    name: str
    model_id: str
    dimension: int
    threshold: float


NOTHING_KEPT = "Nothing of this import was kept (an import is all or nothing); fix it and send it again"


def nothing_kept(error: FaceServiceError) -> FaceServiceError:
    """The error, saying what an import that failed left behind: nothing."""
    if NOTHING_KEPT not in error.message:
        error.message = f"{error.message}. {NOTHING_KEPT}"
        error.args = (error.message,)
    return error


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vector_digest(vector: Vector) -> str:
    return hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()


class Collections:
    """The collection use cases over a `FaceGallery`. `model` says which embedding model serves now:
    every vector stored in or searched against a collection must come from the collection's."""

    def __init__(
        self,
        gallery: PeopleGallery,
        model: Callable[[], EmbeddingModel],
        rules: CollectionRules,
        neighbours: NeighbourSearch,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._gallery: FaceGallery = gallery
        self._model = model
        self.rules = rules
        self._clock = clock
        self.people = People(gallery, gallery, neighbours, rules)
        self.cluster_jobs = ClusterJobs(self.people, gallery, clock)
        self.photos = Photos(gallery, model, rules, clock, on_indexed=self.people.assign_new)

    @property
    def store(self) -> str:
        return self._gallery.kind

    # Collections
    def create(self, name: str, threshold: float | None = None) -> CollectionInfo:
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise InvalidInput("threshold must be between -1 and 1", field="threshold")
        model = self._model()
        chosen = self.rules.default_threshold if threshold is None else threshold
        return self._gallery.create_collection(checked_name(name), model.id, model.dimension, chosen)

    def get(self, name: str) -> CollectionInfo:
        return self._gallery.collection(checked_name(name))

    def all(self) -> list[CollectionInfo]:
        return self._gallery.collections()

    def delete(self, name: str) -> None:
        self._gallery.delete_collection(checked_name(name))

    # Subjects and faces
    def subjects(self, name: str, after: str | None, limit: int) -> list[SubjectInfo]:
        if not 1 <= limit <= self.rules.max_page:
            raise InvalidInput(f"limit must be between 1 and {self.rules.max_page}", field="limit")
        return self._gallery.subjects(checked_name(name), after, limit)

    def subject(self, name: str, external_id: str) -> tuple[SubjectInfo, list[FaceRecord]]:
        return self._gallery.subject(checked_name(name), checked_external_id(external_id))

    def delete_subject(self, name: str, external_id: str) -> int:
        return self._gallery.delete_subject(checked_name(name), checked_external_id(external_id))

    def delete_face(self, name: str, face_id: str) -> FaceRecord:
        return self._gallery.delete_face(checked_name(name), checked_face_id(face_id))

    def enroll_extraction(
        self, name: str, external_id: str, extraction: Extraction, source_digest: str, options: EnrollOptions
    ) -> Enrollment:
        """Enroll the one face of an image (`extraction` holds its largest face, embedded;
        `source_digest` is `image_digest` of the image's bytes)."""
        collection = self._pinned(name, self._model().id)
        checked_external_id(external_id)
        face = self._usable_face(extraction, options)
        record = self._record(external_id, face.embedding, face.face, source_digest)
        return self._add(collection, record)

    def enroll_embedding(self, name: str, external_id: str, values: Sequence[float], model_id: str) -> Enrollment:
        collection = self._pinned(name, model_id)
        checked_external_id(external_id)
        vector = checked_embedding(values, collection.dimension, "embedding")
        return self._add(collection, self._record(external_id, vector, None, vector_digest(vector)))

    # Identification and verification
    def search_extraction(
        self, name: str, extraction: Extraction, top_k: int | None = None, min_quality: QualityLevel | None = None
    ) -> SearchResult:
        """Every face of the extraction, but those under `min_quality` (None: no floor), which are
        reported as skipped, not searched."""
        collection = self._pinned(name, self._model().id)
        faces = [face for face in extraction.faces if at_least(face.face.quality, min_quality)]
        skipped = [face.face for face in extraction.faces if not at_least(face.face.quality, min_quality)]
        if not faces:
            return SearchResult(collection, [], "exact", collection.faces, skipped)
        probes = np.stack([face.embedding for face in faces]).astype(np.float32)
        found = self._search(collection, probes, [face.face for face in faces], top_k)
        return dataclasses.replace(found, skipped=skipped)

    def search_embedding(
        self, name: str, values: Sequence[float], model_id: str, top_k: int | None = None
    ) -> SearchResult:
        collection = self._pinned(name, model_id)
        probe = checked_embedding(values, collection.dimension, "embedding")
        return self._search(collection, probe[None, :], [None], top_k)

    def verify_extraction(self, name: str, external_id: str, extraction: Extraction) -> Verification:
        collection = self._pinned(name, self._model().id)
        if not extraction.faces:
            raise NoFace("No face detected in image")
        return self._verify(collection, external_id, extraction.faces[0].embedding)

    def verify_embedding(self, name: str, external_id: str, values: Sequence[float], model_id: str) -> Verification:
        collection = self._pinned(name, model_id)
        return self._verify(collection, external_id, checked_embedding(values, collection.dimension, "embedding"))

    # Export and import
    def export(self, name: str) -> tuple[CollectionHeader, Iterator[FaceRecord]]:
        collection = self._gallery.collection(checked_name(name))
        header = CollectionHeader(collection.name, collection.model_id, collection.dimension, collection.threshold)
        return header, self._gallery.faces(collection.name)

    def import_header(self, name: str, header: CollectionHeader) -> CollectionHeader:
        """Check an import's first line before any face is read: a collection it could create must be
        one the service can use, and one that exists must be of its model and dimension."""
        checked_name(name)
        try:
            problem = collection_problem(name, header.model_id, header.dimension, header.threshold)
            if problem is not None:
                raise InvalidImport(f"the collection it describes cannot be stored: {problem}", 1)
            model = self._model()
            if header.model_id == model.id and header.dimension != model.dimension:
                raise InvalidImport(
                    f"model {model.id}'s embeddings have {model.dimension} values, not {header.dimension}", 1
                )
            try:
                collection = self._gallery.collection(name)
            except CollectionNotFound:
                return header
            if (collection.model_id, collection.dimension) != (header.model_id, header.dimension):
                raise CollectionModelMismatch(
                    f"The export holds {header.dimension}-value vectors of model {header.model_id}; collection "
                    f"{name} holds {collection.dimension}-value vectors of {collection.model_id}"
                )
            return header
        except FaceServiceError as error:
            raise nothing_kept(error) from None

    def import_face(self, header: CollectionHeader, face: FaceRecord, line: int) -> FaceRecord:
        """An exported face (`line` of the import), checked as an enrollment is, with a new id."""
        try:
            if face.external_id is None and face.photo_id is None:
                raise InvalidInput("a face line needs an external_id, a photo_id or both")
            if face.external_id is not None:
                checked_external_id(face.external_id)
            if face.photo_id is not None:
                checked_photo_id(face.photo_id)
            vector = checked_embedding(face.embedding, header.dimension, "embedding")
            if not is_source_digest(face.source_digest):
                raise InvalidInput("source_digest must be 64 lowercase hex characters (a SHA-256)")
            if face.bbox is not None and (len(face.bbox) != 4 or not all(math.isfinite(v) for v in face.bbox)):
                raise InvalidInput("bbox must be four finite numbers")
            if face.confidence is not None and not 0.0 <= face.confidence <= 1.0:
                raise InvalidInput("confidence must be a number from 0 to 1")
            problem = face_values_problem(face.landmarks, face.quality)
            if problem is not None:
                raise InvalidInput(f"the face cannot be stored: {problem}")
        except (InvalidInput, InvalidEmbedding) as error:
            raise nothing_kept(InvalidImport(error.message, line)) from None
        created_at = face.created_at if face.created_at.tzinfo else face.created_at.replace(tzinfo=UTC)
        return dataclasses.replace(face, face_id=uuid.uuid4().hex, embedding=vector, created_at=created_at)

    def import_faces(self, name: str, header: CollectionHeader, faces: Iterable[FaceRecord]) -> ImportOutcome:
        """Store the faces `import_face` made, and the collection when it does not exist (pinned to the
        export's model), in one transaction: all of them, or on any error none. A face already there
        (same subject and source) is kept once, so an import can be sent again."""
        checked_name(name)
        try:
            return self._gallery.import_collection(name, header.model_id, header.dimension, header.threshold, faces)
        except FaceServiceError as error:
            raise nothing_kept(error) from None

    # Rules
    def _pinned(self, name: str, model_id: str) -> CollectionInfo:
        return pinned(self._gallery, name, model_id)

    def _usable_face(self, extraction: Extraction, options: EnrollOptions) -> EmbeddedFace:
        if not extraction.faces:
            raise NoFace("No usable face in the image")
        if extraction.faces_count > 1 and not options.largest:
            raise MultipleFaces(
                f"The image holds {extraction.faces_count} faces; send one face, or ask for face=largest"
            )
        face = extraction.faces[0]
        box = face.face.box
        side = min(box.x2 - box.x1, box.y2 - box.y1)
        if side < options.min_face_size:
            raise PoorFace(f"The face is {side:.0f} pixels; min_face_size is {options.min_face_size}", "face_too_small")
        if face.face.confidence < options.min_confidence:
            raise PoorFace(
                f"The face's detection confidence is {face.face.confidence:.3f}; "
                f"min_confidence is {options.min_confidence}",
                "low_confidence",
            )
        if not at_least(face.face.quality, options.min_quality):
            raise poor_quality(face.face.quality, options.min_quality)
        return face

    def _record(
        self,
        external_id: str,
        vector: Vector,
        face: DetectedFace | None,
        digest: str,
        bbox: tuple[float, float, float, float] | None = None,
        confidence: float | None = None,
    ) -> FaceRecord:
        if face is None:
            return FaceRecord(uuid.uuid4().hex, external_id, vector, bbox, confidence, digest, self._clock())
        return FaceRecord(
            uuid.uuid4().hex,
            external_id,
            vector,
            (face.box.x1, face.box.y1, face.box.x2, face.box.y2),
            face.confidence,
            digest,
            self._clock(),
            landmarks=face.landmarks,
            quality=stored_quality(face.quality),
        )

    def _add(self, collection: CollectionInfo, record: FaceRecord) -> Enrollment:
        stored, duplicate = self._gallery.add_face(collection.name, record)
        return Enrollment(stored, duplicate, collection.model_id)

    def _top_k(self, top_k: int | None) -> int:
        chosen = self.rules.default_top_k if top_k is None else top_k
        if not 1 <= chosen <= self.rules.max_top_k:
            raise InvalidInput(f"top_k must be between 1 and {self.rules.max_top_k}", field="top_k")
        return chosen

    def _search(
        self,
        collection: CollectionInfo,
        probes: np.ndarray,  # type: ignore[type-arg]
        faces: list[DetectedFace | None],
        top_k: int | None,
    ) -> SearchResult:
        outcome: SearchOutcome = self._gallery.search(collection.name, probes, self._top_k(top_k))
        results = []
        for face, hits in zip(faces, outcome.hits, strict=True):
            best = hits[0] if hits else None
            match = best is not None and best.similarity >= collection.threshold
            decision = Decision(
                match=match,
                external_id=best.external_id if match and best else None,
                similarity=best.similarity if best else None,
                threshold=collection.threshold,
            )
            results.append(ProbeResult(face, hits, decision))
        return SearchResult(collection, results, outcome.method, outcome.searched)

    def _verify(self, collection: CollectionInfo, external_id: str, vector: Vector) -> Verification:
        checked_external_id(external_id)
        outcome = self._gallery.search(collection.name, vector[None, :], 1, external_id=external_id)
        best = outcome.hits[0][0]
        return Verification(
            collection,
            external_id,
            best.face_id,
            best.similarity,
            best.similarity >= collection.threshold,
            collection.threshold,
        )
