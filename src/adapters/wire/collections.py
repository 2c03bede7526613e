"""The JSON of the collection routes: request and response structs, and their presenters (shared by
the HTTP API and the CLI, rounded as the face routes round)."""

from __future__ import annotations

import base64
from datetime import datetime

import msgspec
import numpy as np

from adapters.wire import presenters
from adapters.wire.presenters import similarity
from adapters.wire.schemas import Quality, QualityLevelName, QualityReasonCode
from domain.gallery import CollectionInfo, FaceRecord, Landmarks, StoredQuality, SubjectHit, SubjectInfo
from domain.model import DetectedFace
from domain.quality import QualityLevel, QualityReason
from domain.use_cases.collections import CollectionHeader, Enrollment, SearchResult, Verification

Box = list[int]


class CreateCollectionRequest(msgspec.Struct):
    name: str
    threshold: float | None = None


class CollectionResponse(msgspec.Struct):
    name: str
    model: str  # the `model` id every vector in it comes from
    dimension: int
    threshold: float
    subjects: int
    faces: int  # every face: subjects' and photos'
    created_at: datetime
    photos: int = 0


class CollectionsResponse(msgspec.Struct):
    collections: list[CollectionResponse]


class EnrollResponse(msgspec.Struct, omit_defaults=True):
    face_id: str
    external_id: str
    duplicate: bool
    model: str
    created_at: datetime
    bbox: Box | None = None
    confidence: float | None = None


class SubjectSummary(msgspec.Struct):
    external_id: str
    faces: int
    created_at: datetime


class SubjectsResponse(msgspec.Struct):
    subjects: list[SubjectSummary]
    next: str | None  # the cursor for the next page (`after=`), or null on the last


class FaceQuality(msgspec.Struct):
    """A stored face's quality, as assessed when it was stored (docs/quality.md)."""

    level: QualityLevelName
    score: float
    reasons: list[QualityReasonCode]  # why not high, worst first


class EnrolledFace(msgspec.Struct, omit_defaults=True):
    face_id: str
    created_at: datetime
    bbox: Box | None = None
    confidence: float | None = None
    # Five [x, y] points (eyes, nose tip, mouth corners), and the quality: absent for a face enrolled
    # from an embedding or stored before they were kept.
    landmarks: list[list[float]] | None = None
    quality: FaceQuality | None = None
    embedding: list[float] | None = None


class SubjectResponse(msgspec.Struct):
    external_id: str
    faces_count: int
    created_at: datetime
    faces: list[EnrolledFace]


class DeletedSubjectResponse(msgspec.Struct):
    external_id: str
    deleted_faces: int


class DeletedFaceResponse(msgspec.Struct):
    face_id: str
    external_id: str | None  # null for a photo's unlabelled face


class QueryFace(msgspec.Struct, omit_defaults=True):
    bbox: Box
    confidence: float
    quality: Quality | None = None


class SubjectMatch(msgspec.Struct):
    external_id: str
    face_id: str
    similarity: float


class MatchDecision(msgspec.Struct):
    match: bool
    external_id: str | None
    similarity: float | None
    threshold: float


class ProbeResponse(msgspec.Struct):
    face: QueryFace | None  # null when the query was an embedding
    matches: list[SubjectMatch]
    decision: MatchDecision


class SearchResponse(msgspec.Struct):
    collection: str
    model: str
    method: str  # "exact" or "approximate"
    searched_faces: int
    results: list[ProbeResponse]
    # The image's faces under `min_quality`, with their quality: not searched.
    skipped: list[QueryFace] = msgspec.field(default_factory=list)


class VerifyResponse(msgspec.Struct):
    external_id: str
    face_id: str | None
    similarity: float
    match: bool
    threshold: float


class ImportResponse(msgspec.Struct):
    collection: str
    imported: int


class ExportHeader(msgspec.Struct, tag="collection"):
    """The first line of an export: the collection and the model of every vector in it."""

    name: str
    model: str
    dimension: int
    threshold: float
    format: int = 1


class ExportedFace(msgspec.Struct, tag="face"):
    """One line per face: the vector as base64 of little-endian float32 (exact, and 3x smaller than JSON numbers).
    A photo's unlabelled face has a `photo_id` and a null `external_id`."""

    external_id: str | None
    embedding: str
    source_digest: str
    created_at: datetime
    bbox: list[float] | None = None
    confidence: float | None = None
    landmarks: list[tuple[float, float]] | None = None
    quality: FaceQuality | None = None
    photo_id: str | None = None


def box(values: tuple[float, float, float, float] | None) -> Box | None:
    return [round(v) for v in values] if values is not None else None


def landmarks(points: Landmarks | None) -> list[list[float]] | None:
    """Rounded to 0.1 pixel, as the face routes round them."""
    return None if points is None else [[round(x, 1), round(y, 1)] for x, y in points]


def face_quality(quality: StoredQuality | None) -> FaceQuality | None:
    if quality is None:
        return None
    return FaceQuality(quality.level.value, quality.score, [reason.value for reason in quality.reasons])


def collection(info: CollectionInfo) -> CollectionResponse:
    return CollectionResponse(
        info.name,
        info.model_id,
        info.dimension,
        info.threshold,
        info.subjects,
        info.faces,
        info.created_at,
        info.photos,
    )


def enrollment(result: Enrollment) -> EnrollResponse:
    face = result.face
    return EnrollResponse(
        face_id=face.face_id,
        external_id=face.external_id or "",  # an enrolled face is labelled
        duplicate=result.duplicate,
        model=result.model_id,
        created_at=face.created_at,
        bbox=box(face.bbox),
        confidence=round(face.confidence, 4) if face.confidence is not None else None,
    )


def subjects(page: list[SubjectInfo], limit: int) -> SubjectsResponse:
    next_cursor = page[-1].external_id if len(page) == limit else None
    return SubjectsResponse([SubjectSummary(s.external_id, s.faces, s.created_at) for s in page], next_cursor)


def subject(info: SubjectInfo, faces: list[FaceRecord], include_embeddings: bool) -> SubjectResponse:
    return SubjectResponse(
        info.external_id,
        info.faces,
        info.created_at,
        [
            EnrolledFace(
                face_id=f.face_id,
                created_at=f.created_at,
                bbox=box(f.bbox),
                confidence=round(f.confidence, 4) if f.confidence is not None else None,
                landmarks=landmarks(f.landmarks),
                quality=face_quality(f.quality),
                embedding=f.embedding.tolist() if include_embeddings else None,
            )
            for f in faces
        ],
    )


def hit(match: SubjectHit) -> SubjectMatch:
    return SubjectMatch(match.external_id, match.face_id, similarity(match.similarity))


def query_face(face: DetectedFace) -> QueryFace:
    return QueryFace(presenters.box(face), presenters.confidence(face), presenters.quality(face))


def search(result: SearchResult) -> SearchResponse:
    probes = []
    for probe in result.probes:
        face = probe.face
        decision = probe.decision
        probes.append(
            ProbeResponse(
                face=query_face(face) if face is not None else None,
                matches=[hit(m) for m in probe.hits],
                decision=MatchDecision(
                    decision.match,
                    decision.external_id,
                    similarity(decision.similarity) if decision.similarity is not None else None,
                    decision.threshold,
                ),
            )
        )
    return SearchResponse(
        result.collection.name,
        result.collection.model_id,
        result.method,
        result.searched,
        probes,
        [query_face(face) for face in result.skipped],
    )


def verification(result: Verification) -> VerifyResponse:
    return VerifyResponse(
        result.external_id, result.face_id, similarity(result.similarity), result.match, result.threshold
    )


def export_header(header: CollectionHeader) -> ExportHeader:
    return ExportHeader(header.name, header.model_id, header.dimension, header.threshold)


def exported_face(face: FaceRecord) -> ExportedFace:
    return ExportedFace(
        external_id=face.external_id,
        embedding=base64.b64encode(np.ascontiguousarray(face.embedding, dtype="<f4").tobytes()).decode(),
        source_digest=face.source_digest,
        created_at=face.created_at,
        bbox=list(face.bbox) if face.bbox is not None else None,
        confidence=face.confidence,
        landmarks=None if face.landmarks is None else list(face.landmarks),  # unrounded: an export is exact
        quality=face_quality(face.quality),
        photo_id=face.photo_id,
    )


def imported_face(line: ExportedFace) -> FaceRecord:
    """An export's face line as a record (no id yet); ValueError says what is malformed."""
    try:
        raw = base64.b64decode(line.embedding, validate=True)
    except ValueError:
        raise ValueError("embedding is not base64") from None
    if len(raw) % 4:
        raise ValueError(f"embedding holds {len(raw)} bytes, not a whole number of float32 values")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if line.bbox is not None and len(line.bbox) != 4:
        raise ValueError(f"bbox holds {len(line.bbox)} numbers, not 4")
    bbox = None if line.bbox is None else (line.bbox[0], line.bbox[1], line.bbox[2], line.bbox[3])
    points = line.landmarks
    if points is not None and len(points) != 5:
        raise ValueError(f"landmarks holds {len(points)} points, not 5")
    return FaceRecord(
        "",
        line.external_id,
        vector,
        bbox,
        line.confidence,
        line.source_digest,
        line.created_at,
        landmarks=None if points is None else (points[0], points[1], points[2], points[3], points[4]),
        quality=None if line.quality is None else stored_quality(line.quality),
        photo_id=line.photo_id,
    )


def stored_quality(quality: FaceQuality) -> StoredQuality:
    """The wire's quality as the domain's (its literals are the enums' values: msgspec checked them)."""
    return StoredQuality(
        QualityLevel(quality.level), quality.score, tuple(QualityReason(reason) for reason in quality.reasons)
    )


def imported_header(line: ExportHeader) -> CollectionHeader:
    return CollectionHeader(line.name, line.model, line.dimension, line.threshold)
