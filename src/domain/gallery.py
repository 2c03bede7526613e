"""Value types of face collections: a collection is a gallery pinned to one embedding model, a
subject is a person in it (named by the caller's own id), a face is one enrolled embedding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.model import Vector


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    model_id: str  # EmbeddingModel.id of every vector in it
    dimension: int
    threshold: float  # the match decision's threshold for searches and verifications
    created_at: datetime
    subjects: int
    faces: int


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One enrolled face. No image is ever stored: only the vector and where it came from."""

    face_id: str  # 32 hex characters (a UUID), unique in the store
    external_id: str  # the subject, in the caller's own ids
    embedding: Vector  # float32, unit length, the collection's dimension
    bbox: tuple[float, float, float, float] | None  # in the enrolled image's pixels; None from an embedding
    confidence: float | None  # the detector's; None when enrolled from an embedding
    source_digest: str  # SHA-256 hex of the image bytes, or of the float32 vector: one face per source per subject
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    external_id: str
    faces: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectHit:
    """A subject's best face for one probe."""

    external_id: str
    face_id: str
    similarity: float


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    hits: list[list[SubjectHit]]  # per probe: best subject first, at most top_k, each subject once
    method: str  # "exact" or "approximate"
    searched: int  # faces the search ran over


@dataclass(frozen=True, slots=True)
class GalleryLimits:
    max_collections: int
    max_subjects_per_collection: int
    max_faces_per_subject: int
    max_faces_per_collection: int


@dataclass(frozen=True, slots=True)
class StoreHealth:
    store: str  # "sqlite", "postgresql" or "memory"
    ok: bool
    detail: str
