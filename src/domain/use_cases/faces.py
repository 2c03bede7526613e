"""Detect, embed and compare faces: the use cases of the stateless face API.

Every method is synchronous and CPU-bound; transports run them on a bounded executor.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from domain.embeddings import checked_embedding, checked_embeddings
from domain.errors import BatchFaceLimit, BatchTooLarge, FaceServiceError, InvalidInput, ModelMismatch
from domain.model import BoundingBox, DetectedFace, EmbeddedFace, EmbeddingModel, Image, Pixels, Vector
from domain.ports import Embedder, FaceDetector, ImageDecoder, QualityMeter, ServiceObserver, Similarity
from domain.quality import DEFAULT_RULES, QualityRules, assess

T = TypeVar("T")


class NoObserver:
    def stage(self, name: str, seconds: float) -> None:
        pass

    def faces(self, count: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Detection:
    """Faces found in one image, largest first; the primary face's quality is assessed, every
    face's when all faces were asked for."""

    width: int
    height: int
    faces: list[DetectedFace]


@dataclass(frozen=True, slots=True)
class Extraction:
    """Faces found in one image with their embeddings, largest first.

    `faces` holds only the primary (largest) face unless every face was asked for, each with its
    quality; `faces_count` always counts every face detected.
    """

    width: int
    height: int
    faces: list[EmbeddedFace]
    faces_count: int


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One image of a batch: an extraction, or the error that stopped it (never both)."""

    index: int
    extraction: Extraction | None = None
    error: FaceServiceError | None = None


@dataclass(frozen=True, slots=True)
class CandidateScore:
    index: int
    similarity: float
    match: bool

    @property
    def distance(self) -> float:
        return 1.0 - self.similarity


@dataclass(frozen=True, slots=True)
class Comparison:
    scores: list[CandidateScore]
    threshold: float
    model: str | None

    @property
    def best(self) -> CandidateScore:
        return max(self.scores, key=lambda score: score.similarity)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits (the defaults live in the settings)."""

    max_batch_size: int
    max_candidates: int
    max_faces: int
    max_batch_faces: int  # faces embedded in one batch request, over all its images


# A batch's images are decoded, detected and embedded a group at a time: a group is embedded (and
# its pixels freed) once it holds this many pixels (72 MB as 8-bit BGR) or images, so a batch of 32
# large images costs the memory of one or two, not of 32.
BATCH_GROUP_PIXELS = 24_000_000
BATCH_GROUP_IMAGES = 8


@dataclass(frozen=True, slots=True)
class InputNames:
    """What the caller calls the embeddings it sends, so that errors name them its way."""

    probe: str = "probe"
    candidates: str = "candidates"
    single_candidate: str = "candidate"


class FaceService:
    """Detect, embed and compare faces."""

    def __init__(
        self,
        decoder: ImageDecoder,
        detector: FaceDetector,
        embedder: Embedder,
        similarity: Similarity,
        match_threshold: float,
        limits: Limits,
        meter: QualityMeter,
        quality_rules: QualityRules = DEFAULT_RULES,
        observer: ServiceObserver | None = None,
    ) -> None:
        self._decoder = decoder
        self._detector = detector
        self._embedder = embedder
        self._meter = meter
        self.quality_rules = quality_rules
        self._similarity = similarity
        self.match_threshold = match_threshold
        self.limits = limits
        self._observer: ServiceObserver = observer or NoObserver()

    def _timed(self, stage: str, work: Callable[[], T]) -> T:
        began = time.perf_counter()
        try:
            return work()
        finally:
            self._observer.stage(stage, time.perf_counter() - began)

    def decode(self, data: bytes) -> Image:
        return self._timed("decode", lambda: self._decoder.decode(data))

    def _detect(self, image: Image) -> list[DetectedFace]:
        faces = self._timed("detect", lambda: self._detector.detect(image))[: self.limits.max_faces]
        self._observer.faces(len(faces))
        return faces

    @property
    def model(self) -> EmbeddingModel:
        return self._embedder.model

    def warm_up(self) -> None:
        """Run every model once so the first caller does not pay for lazy initialisation."""
        pixels = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        image = Image(pixels)
        self._detector.detect(image)
        face = DetectedFace(
            box=BoundingBox(64, 64, 192, 192),
            confidence=1.0,
            landmarks=((100, 110), (156, 110), (128, 140), (105, 170), (151, 170)),
        )
        crops = self._embedder.align(image, [face])
        self._embedder.embed_aligned(crops)
        self._meter.measure(image, [face], crops)

    def _embedded(self, image: Image, faces: list[DetectedFace]) -> tuple[list[Pixels], list[Vector]]:
        """The faces' aligned crops and their embeddings."""

        def embedded() -> tuple[list[Pixels], list[Vector]]:
            crops = self._embedder.align(image, faces)
            return crops, self._embedder.embed_aligned(crops)

        return self._timed("embed", embedded)

    def _assessed(
        self, image: Image, faces: list[DetectedFace], crops: Sequence[Pixels] | None = None
    ) -> list[DetectedFace]:
        """The faces with their quality, measured on the crops the embedder aligned (aligned by the
        meter, which warps only what it reads, when the faces are not embedded)."""

        def assessed() -> list[DetectedFace]:
            measures = self._meter.measure(image, faces, self._meter.align(image, faces) if crops is None else crops)
            return [
                dataclasses.replace(face, quality=assess(measured, self.quality_rules))
                for face, measured in zip(faces, measures, strict=True)
            ]

        return self._timed("quality", assessed)

    def detect(self, data: bytes, all_faces: bool = False) -> Detection:
        """Every face; the quality of the primary one, or of each with `all_faces`."""
        image = self.decode(data)
        found = self._detect(image)
        chosen = found if all_faces else found[:1]
        faces = self._assessed(image, chosen) + found[len(chosen) :]
        return Detection(image.source_width, image.source_height, [f.in_source_pixels(image) for f in faces])

    def extract(self, data: bytes, all_faces: bool = False) -> Extraction:
        return self.extract_image(self.decode(data), all_faces)

    def extract_image(self, image: Image, all_faces: bool = False) -> Extraction:
        found = self._detect(image)
        chosen = found if all_faces else found[:1]
        crops, vectors = self._embedded(image, chosen)
        return self._extraction(image, found, self._assessed(image, chosen, crops), vectors)

    def extract_chosen(
        self, data: bytes, choose: Callable[[Sequence[DetectedFace]], Sequence[int]]
    ) -> tuple[list[DetectedFace], Extraction]:
        """Every face with its quality (largest first, in the image's own pixels), and the faces
        `choose` picks of them (their indices) embedded: the others are aligned and measured, never
        run through the recogniser (a photo's faces refused for their size or quality)."""
        image = self.decode(data)
        found = self._detect(image)
        crops = self._timed("embed", lambda: self._embedder.align(image, found)) if found else []
        assessed = self._assessed(image, found, crops) if found else []
        chosen = sorted(set(choose([face.in_source_pixels(image) for face in assessed])))
        vectors = (
            self._timed("embed", lambda: self._embedder.embed_aligned([crops[i] for i in chosen])) if chosen else []
        )
        extraction = self._extraction(image, found, [assessed[i] for i in chosen], vectors)
        return [face.in_source_pixels(image) for face in assessed], extraction

    def _extraction(
        self, image: Image, found: list[DetectedFace], chosen: list[DetectedFace], vectors: list[Vector]
    ) -> Extraction:
        model = self._embedder.model
        faces = [
            EmbeddedFace(face.in_source_pixels(image), vector, model)
            for face, vector in zip(chosen, vectors, strict=True)
        ]
        return Extraction(image.source_width, image.source_height, faces, len(found))

    def extract_batch(self, images: Sequence[bytes | FaceServiceError], all_faces: bool = False) -> list[BatchItem]:
        """Each image on its own: one that cannot be used gets its error, the others go on.

        An item may arrive as the error that already stopped it (undecodable base64, say). Images go
        through in groups bounded by decoded pixels (`BATCH_GROUP_PIXELS`), and at most
        `max_batch_faces` faces are embedded in all: the images past that get a `batch_face_limit` error.
        """
        if not images:
            raise InvalidInput("The batch holds no images", code="empty_batch")
        if len(images) > self.limits.max_batch_size:
            raise BatchTooLarge(f"The batch holds {len(images)} images; the limit is {self.limits.max_batch_size}")
        items: list[BatchItem] = []
        group: list[tuple[int, Image, list[DetectedFace], list[DetectedFace]]] = []
        group_pixels, faces_left = 0, self.limits.max_batch_faces
        for index, data in enumerate(images):
            if isinstance(data, FaceServiceError):
                items.append(BatchItem(index, error=data))
                continue
            try:
                image = self.decode(data)
                found = self._detect(image)
            except FaceServiceError as error:
                items.append(BatchItem(index, error=error))
                continue
            chosen = found if all_faces else found[:1]
            if len(chosen) > faces_left:
                items.append(BatchItem(index, error=BatchFaceLimit(self.limits.max_batch_faces)))
                continue
            faces_left -= len(chosen)
            group.append((index, image, found, chosen))
            group_pixels += image.width * image.height
            del image  # only the group holds the pixels now: freed with it, before the next decode
            if group_pixels >= BATCH_GROUP_PIXELS or len(group) == BATCH_GROUP_IMAGES:
                items += self._embed_group(group)  # the group's pixels are freed before the next decode
                group, group_pixels = [], 0
        items += self._embed_group(group)
        return sorted(items, key=lambda item: item.index)

    def _embed_group(self, group: list[tuple[int, Image, list[DetectedFace], list[DetectedFace]]]) -> list[BatchItem]:
        """Every face of a group of images through the recogniser together."""
        if not group:
            return []

        def embedded() -> tuple[list[list[Pixels]], list[Vector]]:
            crops = [self._embedder.align(image, chosen) for _, image, _, chosen in group]
            return crops, self._embedder.embed_aligned([crop for each in crops for crop in each])

        crops, vectors = self._timed("embed", embedded)
        items, start = [], 0
        for (index, image, found, chosen), image_crops in zip(group, crops, strict=True):
            image_vectors = vectors[start : start + len(chosen)]
            start += len(chosen)
            assessed = self._assessed(image, chosen, image_crops)
            items.append(BatchItem(index, extraction=self._extraction(image, found, assessed, image_vectors)))
        return items

    def compare(
        self,
        probe: Sequence[float],
        candidates: Sequence[Sequence[float]],
        probe_model: str | None = None,
        candidates_model: str | None = None,
        one_to_one: bool = False,
        names: InputNames = InputNames(),
    ) -> Comparison:
        """Cosine similarity of one probe embedding with one or more candidates.

        `one_to_one`: there is exactly one candidate, which errors call `names.single_candidate`."""
        if probe_model and candidates_model and probe_model != candidates_model:
            raise ModelMismatch(
                f"The embeddings come from different models ({probe_model} and {candidates_model}); "
                "compare only embeddings made by the same model"
            )
        if not candidates:
            raise InvalidInput("Give at least one embedding to compare with", code="invalid_request")
        if len(candidates) > self.limits.max_candidates:
            raise InvalidInput(
                f"{len(candidates)} candidates; the limit is {self.limits.max_candidates}",
                code="too_many_candidates",
            )
        dimension = self._embedder.model.dimension
        probe_vector = checked_embedding(probe, dimension, names.probe)
        if one_to_one:
            matrix = checked_embedding(candidates[0], dimension, names.single_candidate)[None, :]
        else:
            matrix = checked_embeddings(candidates, dimension, names.candidates)
        similarities = self._similarity.scores(probe_vector, matrix)
        scores = [
            CandidateScore(index, float(value), bool(value >= self.match_threshold))
            for index, value in enumerate(similarities)
        ]
        return Comparison(scores, self.match_threshold, probe_model or candidates_model)
