"""Use-case results to the wire format, in one place, so the HTTP API and the CLI name and round
every field alike: boxes to whole pixels, confidences to 4 places, landmarks to 0.1 pixel,
similarities to 6 places, embeddings as the float32 values the model produced, quality measures as
the meter rounded them."""

from __future__ import annotations

import re

from adapters.wire.schemas import (
    BatchExtractResponse,
    BatchResult,
    CandidateResult,
    CompareFacesResponse,
    ExtractEmbeddingResponse,
    Face,
    FileExtraction,
    FileFace,
    GalleryHealth,
    HealthResponse,
    InferenceHealth,
    PinnedCollection,
    Quality,
    QualityMeasures,
    QuarantinedCollectionHealth,
    VerifyFaceResponse,
)
from domain.gallery import QuarantinedCollection, StoreHealth
from domain.model import DetectedFace, EmbeddedFace, Vector
from domain.quality import FaceQuality
from domain.use_cases.faces import BatchItem, Comparison, Detection, Extraction
from domain.use_cases.service_info import ServiceInfo

NO_FACE = "No face detected in image"


def box(face: DetectedFace) -> list[int]:
    b = face.box
    return [round(b.x1), round(b.y1), round(b.x2), round(b.y2)]


def confidence(face: DetectedFace) -> float:
    return round(face.confidence, 4)


def landmarks(face: DetectedFace) -> list[list[float]]:
    return [[round(x, 1), round(y, 1)] for x, y in face.landmarks]


def embedding(vector: Vector) -> list[float]:
    values: list[float] = vector.tolist()
    return values


def similarity(value: float) -> float:
    return round(value, 6)


def quality(detected: DetectedFace) -> Quality | None:
    assessed: FaceQuality | None = detected.quality
    if assessed is None:
        return None
    measured = assessed.measures
    return Quality(
        # The wire's literals spell the domain's enums (tests/unit/test_quality.py keeps them equal).
        level=assessed.level.value,
        score=assessed.score,
        reasons=[reason.value for reason in assessed.reasons],
        measures=QualityMeasures(
            face_size=measured.face_size,
            eye_distance=measured.eye_distance,
            yaw=measured.pose.yaw,
            pitch=measured.pose.pitch,
            roll=measured.pose.roll,
            sharpness=measured.sharpness,
            brightness=measured.brightness,
            contrast=measured.contrast,
            blockiness=measured.blockiness,
            confidence=measured.confidence,
        ),
    )


def face(detected: DetectedFace, embedded: EmbeddedFace | None = None) -> Face:
    return Face(
        bbox=box(detected),
        confidence=confidence(detected),
        landmarks=landmarks(detected),
        embedding=embedding(embedded.embedding) if embedded is not None else None,
        quality=quality(detected),
    )


def detection(result: Detection, all_faces: bool) -> VerifyFaceResponse:
    faces = [face(detected) for detected in result.faces] if all_faces else None
    if not result.faces:
        return VerifyFaceResponse(face_detected=False, faces_count=0, error=NO_FACE, faces=faces)
    primary = result.faces[0]
    return VerifyFaceResponse(
        face_detected=True,
        faces_count=len(result.faces),
        confidence=confidence(primary),
        bbox=box(primary),
        message="Face detected successfully",
        faces=faces,
        quality=quality(primary),
    )


def _every_face(result: Extraction, all_faces: bool) -> list[Face] | None:
    return [face(f.face, f) for f in result.faces] if all_faces else None


def extraction(result: Extraction, all_faces: bool) -> ExtractEmbeddingResponse:
    if not result.faces:
        return ExtractEmbeddingResponse(
            face_detected=False, faces_count=0, error=NO_FACE, faces=[] if all_faces else None
        )
    primary = result.faces[0]
    return ExtractEmbeddingResponse(
        face_detected=True,
        faces_count=result.faces_count,
        embedding=embedding(primary.embedding),
        bbox=box(primary.face),
        confidence=confidence(primary.face),
        model=primary.model.id,
        faces=_every_face(result, all_faces),
        quality=quality(primary.face),
    )


def batch_result(item: BatchItem, all_faces: bool) -> BatchResult:
    if item.error is not None:
        return BatchResult(index=item.index, face_detected=False, error=item.error.message, code=item.error.code)
    assert item.extraction is not None  # a BatchItem holds an extraction or an error
    one = extraction(item.extraction, all_faces)
    return BatchResult(
        index=item.index,
        face_detected=one.face_detected,
        faces_count=one.faces_count,
        embedding=one.embedding,
        bbox=one.bbox,
        confidence=one.confidence,
        model=one.model,
        error=one.error,
        code=None if one.face_detected else "no_face",
        faces=one.faces,
        quality=one.quality,
    )


def batch(items: list[BatchItem], all_faces: bool) -> BatchExtractResponse:
    results = [batch_result(item, all_faces) for item in items]
    successful = sum(1 for result in results if result.face_detected)
    return BatchExtractResponse(
        results=results, total=len(results), successful=successful, failed=len(results) - successful
    )


def comparison(result: Comparison, one_to_one: bool) -> CompareFacesResponse:
    best = result.best
    results = None
    if not one_to_one:
        results = [
            CandidateResult(
                index=s.index, similarity=similarity(s.similarity), distance=similarity(s.distance), match=s.match
            )
            for s in result.scores
        ]
    return CompareFacesResponse(
        similarity=similarity(best.similarity),
        distance=similarity(best.distance),
        match=best.match,
        threshold=result.threshold,
        model=result.model,
        best_index=best.index if results is not None else None,
        results=results,
    )


def health_status(workers: int, alive: int) -> str:
    return "healthy" if alive == workers else "degraded" if alive else "unavailable"


def health(
    info: ServiceInfo, isolation: str, workers: int, alive: int, restarts: int, gallery: GalleryHealth | None = None
) -> HealthResponse:
    return HealthResponse(
        status=health_status(workers, alive),
        model=info.backend,
        version=info.version,
        backend=info.backend,
        model_pack=info.model_pack,
        model_id=info.model_id,
        embedding_size=info.embedding_size,
        execution_providers=info.execution_providers,
        requested_execution_providers=info.requested_execution_providers,
        inference=InferenceHealth(isolation=isolation, workers=workers, alive=alive, restarts=restarts),
        gallery=gallery,
    )


def gallery_health(
    store: StoreHealth,
    pinned: list[tuple[str, str]],
    hidden: tuple[tuple[str, str], ...] = (),
    quarantined: list[QuarantinedCollection] | None = None,
) -> GalleryHealth:
    """The gallery's part of /health, its detail without file paths or URLs (see `without_locations`);
    `quarantined` as the caller may see them (default: every one the store reports)."""
    broken = store.quarantined if quarantined is None else quarantined
    return GalleryHealth(
        store.store,
        store.ok,
        without_locations(store.detail, hidden),
        [PinnedCollection(name, model) for name, model in pinned],
        [QuarantinedCollectionHealth(item.name, item.reason) for item in broken],
    )


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/[^\s'\",;:()]+")


def without_locations(text: str, hidden: tuple[tuple[str, str], ...] = ()) -> str:
    """`text` with each configured location in `hidden` ((value, the name to show instead), e.g. the
    data folder as DATA_DIR, the database URL as DATABASE_URL) replaced by its name, then any other
    URL or absolute path replaced by <url> or <path>: a store's message may name either."""
    for value, name in sorted(hidden, key=lambda pair: -len(pair[0])):
        if value:
            text = re.sub(rf"(?<![\w./~-]){re.escape(value)}(?![\w.-])", name, text)
    return ABSOLUTE_PATH.sub("<path>", URL.sub("<url>", text))


def file_extraction(path: str, result: Extraction) -> FileExtraction:
    return FileExtraction(
        file=path,
        width=result.width,
        height=result.height,
        faces_count=result.faces_count,
        faces=[
            FileFace(
                bbox=box(f.face),
                confidence=confidence(f.face),
                landmarks=landmarks(f.face),
                model=f.model.id,
                embedding=embedding(f.embedding),
            )
            for f in result.faces
        ],
    )
