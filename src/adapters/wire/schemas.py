"""Request and response bodies. Field names follow the original service's contract;
fields marked "addition" are new and optional for existing clients."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Box = Annotated[list[int], msgspec.Meta(description="[x1, y1, x2, y2] in the sent image's pixels")]

# The wire's spelling of domain.quality's QualityLevel and QualityReason (a test keeps them equal).
QualityLevelName = Literal["low", "medium", "high"]
QualityReasonCode = Literal[
    "EXTREME_POSE",
    "LOW_CONFIDENCE",
    "SMALL_BOUNDING_BOX",
    "LOW_SHARPNESS",
    "COMPRESSION_ARTIFACTS",
    "LOW_BRIGHTNESS",
    "HIGH_BRIGHTNESS",
    "LOW_CONTRAST",
]


class ErrorResponse(msgspec.Struct, omit_defaults=True):
    error: str
    code: str
    field: str | None = None
    line: int | None = None  # an import's line the error is about (1: the header)
    reasons: list[QualityReasonCode] | None = None  # addition: why a face's quality was refused (low_quality_face)
    request_id: str | None = None


class ImageRequest(msgspec.Struct):
    image_base64: str


class BatchRequest(msgspec.Struct):
    images: list[str]


class GalleryRequest(msgspec.Struct):
    """The JSON body of enroll, search and verify: an image, or an embedding with its model."""

    image_base64: str | None = None
    embedding: list[float] | None = None
    model: str | None = None
    top_k: int | None = None


class CompareRequest(msgspec.Struct):
    # Read as raw JSON first: a value in an embedding that is no number is an unusable embedding
    # (invalid_embedding), not a malformed request; `inputs.read_comparison` decodes each on its own.
    # An absent field reads as an empty Raw (msgspec has no Raw | None).
    embedding_a: msgspec.Raw  # list[float]
    embedding_b: msgspec.Raw = msgspec.Raw()  # list[float]
    candidates: msgspec.Raw = msgspec.Raw()  # addition: one-to-many, list[list[float]]
    model_a: str | None = None  # addition: the `model` that made embedding_a
    model_b: str | None = None  # addition: the `model` that made embedding_b / the candidates


class QualityMeasures(msgspec.Struct):
    """What the quality was judged on, in the pixels the models read (docs/quality.md)."""

    face_size: Annotated[float, msgspec.Meta(description="The box's shorter side, pixels")]
    eye_distance: Annotated[float, msgspec.Meta(description="Between the eye centres, pixels")]
    yaw: Annotated[float, msgspec.Meta(description="Degrees; > 0: turned toward the image's right")]
    pitch: Annotated[float, msgspec.Meta(description="Degrees; > 0: tilted up")]
    roll: Annotated[float, msgspec.Meta(description="Degrees; > 0: rotated clockwise in the image")]
    sharpness: Annotated[float, msgspec.Meta(description="Detail of the aligned face: ~0.8 sharp, < 0.3 blurred")]
    brightness: Annotated[float, msgspec.Meta(description="Mean grey level of the face, 0..1")]
    contrast: Annotated[float, msgspec.Meta(description="Standard deviation of the face's grey levels, 0..1")]
    blockiness: Annotated[
        float | None, msgspec.Meta(description="JPEG block edges against other edges: 1 none; null: not measured")
    ]
    confidence: Annotated[float, msgspec.Meta(description="The detector's confidence")]


class Quality(msgspec.Struct):
    """Addition: how far the face's embedding can be trusted to identify it (docs/api.md, docs/quality.md)."""

    level: QualityLevelName
    score: Annotated[float, msgspec.Meta(ge=0, le=1, description="Estimated share of identity kept, 0..1")]
    reasons: Annotated[list[QualityReasonCode], msgspec.Meta(description="Why not high, worst first")]
    measures: QualityMeasures


class Face(msgspec.Struct, omit_defaults=True):
    bbox: Box
    confidence: float
    landmarks: list[list[float]]
    embedding: list[float] | None = None
    quality: Quality | None = None  # addition


class InferenceHealth(msgspec.Struct):
    isolation: str  # "process" or "thread" (INFERENCE_ISOLATION)
    workers: int
    alive: int
    restarts: int  # workers replaced since start (crashed or overran JOB_TIMEOUT_SECONDS)


class PinnedCollection(msgspec.Struct):
    name: str
    model: str  # the model id every vector in it must come from


class QuarantinedCollectionHealth(msgspec.Struct):
    name: str
    reason: str  # what the store found broken when it read the collection back


class GalleryHealth(msgspec.Struct):
    store: str  # "sqlite", "postgresql" or "memory"
    ok: bool
    detail: str
    collections: list[PinnedCollection]
    quarantined: list[QuarantinedCollectionHealth] = []  # not served: 503 collection_unavailable


class HealthResponse(msgspec.Struct, omit_defaults=True):
    """Without a valid API key, `status` alone; with one, the rest too (docs/api.md)."""

    status: str
    model: str | None = None
    version: str | None = None
    backend: str | None = None
    model_pack: str | None = None
    model_id: str | None = None
    embedding_size: int | None = None
    execution_providers: list[str] | None = None
    requested_execution_providers: list[str] | None = None
    inference: InferenceHealth | None = None  # addition
    gallery: GalleryHealth | None = None  # addition


class VerifyFaceResponse(msgspec.Struct, omit_defaults=True):
    face_detected: bool
    faces_count: int
    confidence: float | None = None
    bbox: Box | None = None
    message: str | None = None
    error: str | None = None
    faces: list[Face] | None = None
    quality: Quality | None = None  # addition: the primary face's


class ExtractEmbeddingResponse(msgspec.Struct, omit_defaults=True):
    face_detected: bool
    faces_count: int
    embedding: list[float] | None = None
    bbox: Box | None = None
    confidence: float | None = None
    model: str | None = None
    error: str | None = None
    faces: list[Face] | None = None
    quality: Quality | None = None  # addition: the primary face's


class BatchResult(msgspec.Struct, omit_defaults=True):
    index: int
    face_detected: bool
    faces_count: int | None = None
    embedding: list[float] | None = None
    bbox: Box | None = None
    confidence: float | None = None
    model: str | None = None
    error: str | None = None
    code: str | None = None
    faces: list[Face] | None = None
    quality: Quality | None = None  # addition: the primary face's


class BatchExtractResponse(msgspec.Struct):
    results: list[BatchResult]
    total: int
    successful: int
    failed: int


class CandidateResult(msgspec.Struct):
    index: int
    similarity: float
    distance: float
    match: bool


class CompareFacesResponse(msgspec.Struct, omit_defaults=True):
    similarity: float
    distance: float
    match: bool
    threshold: float
    model: str | None = None
    best_index: int | None = None
    results: list[CandidateResult] | None = None


class FileFace(msgspec.Struct):
    """One face of a file, as `face-service embed` writes it."""

    bbox: Box
    confidence: float
    landmarks: list[list[float]]
    model: str
    embedding: list[float]


class FileExtraction(msgspec.Struct):
    """One line of `face-service embed`'s output."""

    file: str
    width: int
    height: int
    faces_count: int
    faces: list[FileFace]


class FileError(msgspec.Struct):
    """A line of `face-service embed`'s output for a file it could not use."""

    file: str
    error: str
    code: str
