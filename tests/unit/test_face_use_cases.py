"""The face use cases on small stub ports: no HTTP, no models, no image codecs (milliseconds).

The stubs are checked by what they were asked and what they recorded, not by mocks' call lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from domain.errors import BatchTooLarge, InvalidEmbedding, InvalidInput, ModelMismatch, UndecodableImage
from domain.model import BoundingBox, DetectedFace, EmbeddingModel, Image, Pixels, Vector
from domain.quality import Curve, HeadPose, QualityLevel, QualityMeasures, QualityReason, QualityRules
from domain.similarity import CosineSimilarity
from domain.use_cases.faces import FaceService, InputNames, Limits

MODEL = EmbeddingModel(pack="stub", weights_digest="0badf00d", dimension=4)
LANDMARKS = ((1.0, 1.0), (2.0, 1.0), (1.5, 1.5), (1.0, 2.0), (2.0, 2.0))


def face(side: float, confidence: float = 0.9) -> DetectedFace:
    return DetectedFace(BoundingBox(0, 0, side, side), confidence, LANDMARKS)


class StubDecoder:
    """b"bad" is undecodable; any other bytes are a 10x10 image (reported at 20x20 when b"half")."""

    def decode(self, data: bytes) -> Image:
        if data == b"bad":
            raise UndecodableImage("corrupt")
        pixels = np.zeros((10, 10, 3), np.uint8)
        return Image(pixels, source_size=(20, 20) if data == b"half" else None)


class StubDetector:
    def __init__(self, faces: list[DetectedFace]) -> None:
        self.faces = faces

    def detect(self, image: Image) -> list[DetectedFace]:
        return list(self.faces)


class StubEmbedder:
    """A face's crop is a 2x2 image filled with its box's side; crop i of a run gets the unit vector
    on axis i % 4. Counts the model runs and keeps every crop it made."""

    model = MODEL

    def __init__(self) -> None:
        self.runs = 0
        self.crops: list[Pixels] = []

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        return self.embed_aligned(self.align(image, faces))

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        return [self.embed(image, faces) for image, faces in items]

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        crops = [np.full((2, 2, 3), int(face.box.x2), np.uint8) for face in faces]
        self.crops += crops
        return crops

    def embed_aligned(self, crops: Sequence[Pixels]) -> list[Vector]:
        self.runs += 1
        return [np.eye(4, dtype=np.float32)[i % 4] for i in range(len(crops))]


class StubMeter:
    """Reads the face size off the crop the embedder made (so it must be that crop); every other
    measure is a good one. Keeps the crops it was given."""

    def __init__(self) -> None:
        self.crops: list[Pixels] = []

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        """For faces not embedded (detect): StubEmbedder's crops."""
        return [np.full((2, 2, 3), int(face.box.x2), np.uint8) for face in faces]

    def measure(self, image: Image, faces: Sequence[DetectedFace], crops: Sequence[Pixels]) -> list[QualityMeasures]:
        self.crops += crops
        return [
            QualityMeasures(
                face_size=float(crop[0, 0, 0]) * 10,  # the stubs' sides are 4 to 9: 40 to 90 pixels
                eye_distance=20.0,
                pose=HeadPose(0.0, 0.0, 0.0),
                sharpness=0.9,
                brightness=0.5,
                contrast=0.15,
                blockiness=1.0,
                confidence=face.confidence,
            )
            for face, crop in zip(faces, crops, strict=True)
        ]


class RecordingObserver:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.face_counts: list[int] = []

    def stage(self, name: str, seconds: float) -> None:
        self.stages.append(name)

    def faces(self, count: int) -> None:
        self.face_counts.append(count)


FLAT = Curve(((0.0, 1.0),))
# Faces under 30 pixels keep nothing; every other measure costs nothing.
RULES = QualityRules(
    sharpness=FLAT,
    face_size=Curve(((29.0, 0.0), (30.0, 1.0))),
    blockiness=FLAT,
    contrast=FLAT,
    dark_contrast=FLAT,
    over_exposure=FLAT,
    high=0.8,
    medium=0.6,
    dark_below=0.1,
    min_confidence=0.5,
    max_yaw=45.0,
    max_pitch_down=30.0,
    max_pitch_up=45.0,
)


def service(
    faces: list[DetectedFace] | None = None,
    embedder: StubEmbedder | None = None,
    observer: RecordingObserver | None = None,
    meter: StubMeter | None = None,
    **limits: int,
) -> FaceService:
    return FaceService(
        decoder=StubDecoder(),
        detector=StubDetector(faces if faces is not None else [face(8), face(4)]),
        embedder=embedder or StubEmbedder(),
        similarity=CosineSimilarity(),
        match_threshold=0.5,
        limits=Limits(**{"max_batch_size": 3, "max_candidates": 5, "max_faces": 10, "max_batch_faces": 50, **limits}),
        meter=meter or StubMeter(),
        quality_rules=RULES,
        observer=observer,
    )


def test_extract_embeds_the_largest_face_and_counts_every_face() -> None:
    result = service().extract(b"image")
    assert result.faces_count == 2
    assert [f.face.box.x2 for f in result.faces] == [8]
    assert result.faces[0].model == MODEL


def test_extract_all_faces_embeds_each_in_order() -> None:
    result = service().extract(b"image", all_faces=True)
    assert [f.face.box.x2 for f in result.faces] == [8, 4]
    assert [int(np.argmax(f.embedding)) for f in result.faces] == [0, 1]


def test_faces_are_reported_in_the_pixels_of_the_image_as_sent() -> None:
    result = service().detect(b"half")
    assert (result.width, result.height) == (20, 20)
    assert result.faces[0].box == BoundingBox(0, 0, 16, 16)


def test_max_faces_caps_what_is_detected() -> None:
    result = service(faces=[face(9), face(8), face(7)], max_faces=2).extract(b"image", all_faces=True)
    assert result.faces_count == 2


def test_the_observer_sees_each_stage_and_the_face_count() -> None:
    observer = RecordingObserver()
    service(observer=observer).extract(b"image")
    assert observer.stages == ["decode", "detect", "embed", "quality"]
    assert observer.face_counts == [2]


def test_extract_measures_quality_on_the_crops_the_embedder_aligned() -> None:
    embedder, meter = StubEmbedder(), StubMeter()
    result = service(faces=[face(8), face(2)], embedder=embedder, meter=meter).extract(b"image", all_faces=True)
    assert len(embedder.crops) == 2 and all(a is b for a, b in zip(meter.crops, embedder.crops, strict=True))
    first, second = (f.face.quality for f in result.faces)
    assert first is not None and first.level is QualityLevel.HIGH and first.measures.face_size == 80
    assert second is not None and second.level is QualityLevel.LOW
    assert second.reasons == (QualityReason.SMALL_BOUNDING_BOX,)


def test_detect_assesses_the_primary_face_or_every_face() -> None:
    primary = service().detect(b"image")
    assert primary.faces[0].quality is not None and primary.faces[1].quality is None
    every = service().detect(b"image", all_faces=True)
    assert all(f.quality is not None for f in every.faces)


def test_quality_is_kept_when_faces_are_reported_in_the_pixels_sent() -> None:
    result = service().extract(b"half")
    assert result.faces[0].face.box == BoundingBox(0, 0, 16, 16)
    quality = result.faces[0].face.quality
    assert quality is not None and quality.measures.face_size == 80  # measured in the pixels decoded


def test_a_batch_keeps_order_isolates_errors_and_runs_the_model_once() -> None:
    embedder = StubEmbedder()
    items = service(embedder=embedder).extract_batch([b"one", b"bad", InvalidInput("no base64")])
    assert [item.index for item in items] == [0, 1, 2]
    assert items[0].extraction is not None and items[0].error is None
    assert items[1].error is not None and items[1].error.code == "invalid_image"
    assert items[2].error is not None and items[2].error.message == "no base64"
    assert embedder.runs == 1
    assert items[0].extraction.faces[0].face.quality is not None


def test_batch_size_limits() -> None:
    with pytest.raises(InvalidInput) as empty:
        service().extract_batch([])
    assert empty.value.code == "empty_batch"
    with pytest.raises(BatchTooLarge):
        service().extract_batch([b"x"] * 4)


def test_compare_scores_matches_against_the_threshold() -> None:
    probe = [1.0, 0.0, 0.0, 0.0]
    result = service().compare(probe, [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert [round(s.similarity, 4) for s in result.scores] == [1.0, 0.0, 0.7071]
    assert [s.match for s in result.scores] == [True, False, True]
    assert result.best.index == 0 and result.threshold == 0.5


def test_compare_refuses_embeddings_of_different_models() -> None:
    with pytest.raises(ModelMismatch):
        service().compare([1, 0, 0, 0], [[1, 0, 0, 0]], probe_model="a:1", candidates_model="b:2")


def test_compare_limits_the_candidates() -> None:
    with pytest.raises(InvalidInput) as failure:
        service().compare([1, 0, 0, 0], [[1, 0, 0, 0]] * 6)
    assert failure.value.code == "too_many_candidates"


def test_compare_names_a_bad_embedding_as_the_caller_does() -> None:
    names = InputNames(probe="embedding_a", candidates="candidates", single_candidate="embedding_b")
    with pytest.raises(InvalidEmbedding) as probe:
        service().compare([1, 0, 0], [[1, 0, 0, 0]], names=names)
    assert probe.value.field == "embedding_a"
    with pytest.raises(InvalidEmbedding) as candidate:
        service().compare([1, 0, 0, 0], [[1, 0, 0, 0], [0, 0, 0, 0]], names=names)
    assert candidate.value.field == "candidates[1]"
    with pytest.raises(InvalidEmbedding) as single:
        service().compare([1, 0, 0, 0], [[1, 0, 0, 0, 0]], one_to_one=True, names=names)
    assert single.value.field == "embedding_b"
