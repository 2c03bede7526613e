"""Photos in a collection: index every face of a photo under the caller's photo id (unlabelled), find
the photos a person is in, forget a photo.

Which faces of a photo are indexed is decided here (`photo_plan`), on every face the detector found
with its quality, before any face is embedded: the faces refused (too small, below the quality floor,
past `max_faces`) are answered `unindexed` with their reasons, as Rekognition's IndexFaces answers
UnindexedFaces. Indexing is idempotent by photo id and the image's bytes: `already_indexed` is asked
before the models run, and the store decides it again inside its transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from domain.embeddings import checked_embedding
from domain.errors import InvalidInput, PhotoExists, PhotoNotFound
from domain.gallery import (
    CollectionInfo,
    FaceRecord,
    PhotoCursor,
    PhotoInfo,
    PhotoSearchOutcome,
    StoredQuality,
)
from domain.model import DetectedFace, EmbeddingModel, Vector
from domain.ports import FaceGallery
from domain.quality import DEFAULT_ENROLL_QUALITY, QualityLevel
from domain.use_cases.faces import Extraction
from domain.use_cases.gallery_rules import (
    CollectionRules,
    NoFace,
    at_least,
    checked_name,
    checked_photo_id,
    pinned,
    poor_quality,
    stored_quality,
)

MAX_PHOTO_TOP_K = 1000  # photos per page of a photo search
DEFAULT_PHOTO_TOP_K = 100
MAX_FACES_PER_PHOTO = 100  # the most faces `max_faces` may ask to index from one photo

# Why a face of a photo was not indexed (with the quality's own reasons after LOW_QUALITY).
LOW_QUALITY = "LOW_QUALITY"
EXCEEDS_MAX_FACES = "EXCEEDS_MAX_FACES"
SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"


@dataclass(frozen=True, slots=True)
class PhotoOptions:
    min_quality: QualityLevel | None = DEFAULT_ENROLL_QUALITY  # None: every face, whatever its quality
    max_faces: int = MAX_FACES_PER_PHOTO  # the largest faces that pass the filters are indexed
    min_face_size: int = 0  # pixels, the box's shorter side

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= MAX_FACES_PER_PHOTO:
            raise InvalidInput(f"max_faces must be between 1 and {MAX_FACES_PER_PHOTO}", field="max_faces")
        if self.min_face_size < 0:
            raise InvalidInput("min_face_size must be 0 or more", field="min_face_size")


def photo_plan(faces: Sequence[DetectedFace], options: PhotoOptions) -> list[tuple[str, ...]]:
    """For each face (largest first, assessed, in the photo's pixels) why it is not indexed: empty
    for the faces to index. Small and poor faces are refused first; of the rest, the `max_faces`
    largest are indexed."""
    plan: list[tuple[str, ...]] = []
    indexed = 0
    for face in faces:
        box = face.box
        if min(box.x2 - box.x1, box.y2 - box.y1) < options.min_face_size:
            plan.append((SMALL_BOUNDING_BOX,))
        elif not at_least(face.quality, options.min_quality):
            reasons = () if face.quality is None else tuple(reason.value for reason in face.quality.reasons)
            plan.append((LOW_QUALITY, *reasons))
        elif indexed >= options.max_faces:
            plan.append((EXCEEDS_MAX_FACES,))
        else:
            indexed += 1
            plan.append(())
    return plan


def chosen_faces(options: PhotoOptions) -> Callable[[Sequence[DetectedFace]], list[int]]:
    """What an inference worker embeds of a photo: the indices of the faces `photo_plan` indexes."""
    return lambda faces: [i for i, reasons in enumerate(photo_plan(faces, options)) if not reasons]


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """A photo's faces as an inference worker found them: every face (assessed, largest first) and the
    embedded ones (those `photo_plan` indexes, in the same order)."""

    source_digest: str
    found: list[DetectedFace]
    extraction: Extraction


@dataclass(frozen=True, slots=True)
class PhotoIndexing:
    photo: PhotoInfo
    faces: list[FaceRecord]
    duplicate: bool  # indexed before from the same bytes: nothing was stored, nothing run
    model_id: str
    unindexed: list[tuple[DetectedFace, tuple[str, ...]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PhotoSearchResult:
    collection: CollectionInfo
    probe: DetectedFace | None  # None when the probe was an embedding
    outcome: PhotoSearchOutcome  # its hits: this page
    min_similarity: float
    more: bool  # photos follow this page


class Photos:
    """The photo use cases over a `FaceGallery`, pinned to the collection's model as `Collections`."""

    def __init__(
        self,
        gallery: FaceGallery,
        model: Callable[[], EmbeddingModel],
        rules: CollectionRules,
        clock: Callable[[], datetime],
        on_indexed: Callable[[str, list[FaceRecord]], object] = lambda name, faces: None,
    ) -> None:
        self._gallery = gallery
        self._on_indexed = on_indexed  # a new photo's faces, once stored: People.assign_new
        self._model = model
        self._rules = rules
        self._clock = clock

    def already_indexed(self, name: str, photo_id: str, source_digest: str) -> PhotoIndexing | None:
        """The stored photo when this id was indexed from these bytes (answered without running a
        model); None when it was not; PhotoExists when it was, from other bytes."""
        collection = pinned(self._gallery, name, self._model().id)
        try:
            photo, faces = self._gallery.photo(collection.name, checked_photo_id(photo_id))
        except PhotoNotFound:
            return None
        if photo.source_digest != source_digest:
            raise PhotoExists(f"Photo {photo_id} was indexed from other bytes; delete it first")
        return PhotoIndexing(photo, faces, True, collection.model_id)

    def index(self, name: str, photo_id: str, given: PhotoFaces, options: PhotoOptions) -> PhotoIndexing:
        """Store the photo with its embedded faces, unlabelled; answer the faces it did not index."""
        collection = pinned(self._gallery, name, self._model().id)
        checked_photo_id(photo_id)
        plan = photo_plan(given.found, options)
        unindexed = [(face, reasons) for face, reasons in zip(given.found, plan, strict=True) if reasons]
        now = self._clock()
        records = [
            _record(photo_id, given.source_digest, face.face, face.embedding, now) for face in given.extraction.faces
        ]
        stored, faces, duplicate = self._gallery.add_photo(
            collection.name, PhotoInfo(photo_id, given.source_digest, len(records), now), records
        )
        if not duplicate and faces:
            self._on_indexed(collection.name, faces)
        return PhotoIndexing(stored, faces, duplicate, collection.model_id, [] if duplicate else unindexed)

    def page(self, name: str, after: str | None, limit: int) -> list[PhotoInfo]:
        if not 1 <= limit <= self._rules.max_page:
            raise InvalidInput(f"limit must be between 1 and {self._rules.max_page}", field="limit")
        return self._gallery.photos(checked_name(name), after, limit)

    def get(self, name: str, photo_id: str) -> tuple[PhotoInfo, list[FaceRecord]]:
        return self._gallery.photo(checked_name(name), checked_photo_id(photo_id))

    def delete(self, name: str, photo_id: str) -> int:
        return self._gallery.delete_photo(checked_name(name), checked_photo_id(photo_id))

    def search_extraction(
        self,
        name: str,
        extraction: Extraction,
        face: int | None,
        top_k: int,
        min_similarity: float | None,
        after: PhotoCursor | None,
        min_quality: QualityLevel | None,
    ) -> PhotoSearchResult:
        """The photos holding the person of the image's largest face, or of its `face`-th (0-based, as
        /extract-embedding?all_faces=true lists them)."""
        collection = pinned(self._gallery, name, self._model().id)
        index = 0 if face is None else face
        if not extraction.faces:
            raise NoFace("No face detected in image")
        if not 0 <= index < len(extraction.faces):
            raise NoFace(f"The image holds {len(extraction.faces)} faces; face={face} is not one of them (0-based)")
        probe = extraction.faces[index]
        if not at_least(probe.face.quality, min_quality):
            raise poor_quality(probe.face.quality, min_quality)
        return self._search(collection, probe.embedding, probe.face, top_k, min_similarity, after)

    def search_embedding(
        self,
        name: str,
        values: Sequence[float],
        model_id: str,
        top_k: int,
        min_similarity: float | None,
        after: PhotoCursor | None,
    ) -> PhotoSearchResult:
        collection = pinned(self._gallery, name, model_id)
        vector = checked_embedding(values, collection.dimension, "embedding")
        return self._search(collection, vector, None, top_k, min_similarity, after)

    def _search(
        self,
        collection: CollectionInfo,
        vector: Vector,
        face: DetectedFace | None,
        top_k: int,
        min_similarity: float | None,
        after: PhotoCursor | None,
    ) -> PhotoSearchResult:
        if not 1 <= top_k <= MAX_PHOTO_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_PHOTO_TOP_K}", field="top_k")
        floor = collection.threshold if min_similarity is None else min_similarity
        if not -1.0 <= floor <= 1.0:
            raise InvalidInput("min_similarity must be between -1 and 1", field="min_similarity")
        probe = np.asarray(vector, dtype=np.float32)
        # One more than the page: whether another page follows, so the last one says so.
        outcome = self._gallery.search_photos(collection.name, probe, floor, top_k + 1, after)
        page = dataclasses.replace(outcome, hits=outcome.hits[:top_k])
        return PhotoSearchResult(collection, face, page, floor, len(outcome.hits) > top_k)


def _record(photo_id: str, digest: str, face: DetectedFace, vector: Vector, moment: datetime) -> FaceRecord:
    quality: StoredQuality | None = stored_quality(face.quality)
    return FaceRecord(
        uuid.uuid4().hex,
        None,
        vector,
        (face.box.x1, face.box.y1, face.box.x2, face.box.y2),
        face.confidence,
        digest,
        moment,
        landmarks=face.landmarks,
        quality=quality,
        photo_id=photo_id,
    )
