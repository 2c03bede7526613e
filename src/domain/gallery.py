"""Value types of face collections: a collection is a gallery pinned to one embedding model, a
subject is a person in it (named by the caller's own id), a face is one enrolled embedding."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from domain.model import Point, Vector
from domain.quality import QualityLevel, QualityReason

# What a stored value may be. Checked (full match: "acme\n" is no name) before anything is written,
# and again when a store reads its collections back at start, where a row outside them is quarantined.
MAX_DIMENSION = 4096  # the longest embedding a collection may hold (the buffalo packs' is 512)
# Collection names go in URLs and, for PostgreSQL, in table names: letters, digits, ".", "_", "-".
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The caller's ids: user ids, UUIDs, e-mail addresses; one URL path segment, so no "/".
EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:@+=-]{1,128}")
# Segments every URL normaliser (fetch, curl, proxies) removes: ".../subjects/.." reaches the
# collection itself. Never an id.
DOT_SEGMENTS = frozenset({".", ".."})
MODEL_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")  # `<pack>:<8 hex>`; a pack is named by its folder
FACE_ID = re.compile(r"[0-9a-f]{32}")  # a UUID's hex
SOURCE_DIGEST = re.compile(r"[0-9a-f]{64}")  # SHA-256 hex


def is_collection_name(value: object) -> bool:
    return isinstance(value, str) and COLLECTION_NAME.fullmatch(value) is not None


def is_external_id(value: object) -> bool:
    return isinstance(value, str) and value not in DOT_SEGMENTS and EXTERNAL_ID.fullmatch(value) is not None


def is_photo_id(value: object) -> bool:
    """Photo ids follow the external ids' rules (the caller's file names, paths with ':' for '/')."""
    return is_external_id(value)


def is_face_id(value: object) -> bool:
    return isinstance(value, str) and FACE_ID.fullmatch(value) is not None


def is_source_digest(value: object) -> bool:
    return isinstance(value, str) and SOURCE_DIGEST.fullmatch(value) is not None


def collection_problem(name: object, model_id: object, dimension: object, threshold: object) -> str | None:
    """What makes these a collection no store may hold (None: nothing). Also for values read back
    from a database, whatever their types."""
    if not is_collection_name(name):
        return "its name is not a collection name"
    if not isinstance(model_id, str) or MODEL_ID.fullmatch(model_id) is None:
        return "its model id is empty, too long or holds control characters"
    if isinstance(dimension, bool) or not isinstance(dimension, int) or not 1 <= dimension <= MAX_DIMENSION:
        return f"its dimension must be a whole number from 1 to {MAX_DIMENSION}"
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not -1.0 <= threshold <= 1.0:
        return "its threshold must be a number from -1 to 1"  # NaN fails the comparison too
    return None


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    model_id: str  # EmbeddingModel.id of every vector in it
    dimension: int
    threshold: float  # the match decision's threshold for searches and verifications
    created_at: datetime
    subjects: int
    faces: int  # every face: labelled or not
    photos: int = 0


Landmarks = tuple[Point, Point, Point, Point, Point]


@dataclass(frozen=True, slots=True)
class StoredQuality:
    """A face's quality as assessed when it was stored (domain/quality.py), without the measures."""

    level: QualityLevel
    score: float  # 0..1
    reasons: tuple[QualityReason, ...]


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One stored face: a subject's (labelled: `external_id`), a photo's (`photo_id`), or both. No
    image is ever stored: only the vector and where it came from."""

    face_id: str  # 32 hex characters (a UUID), unique in the store
    external_id: str | None  # the subject, in the caller's own ids; None for a photo's unlabelled face
    embedding: Vector  # float32, unit length, the collection's dimension
    bbox: tuple[float, float, float, float] | None  # in the enrolled image's pixels; None from an embedding
    confidence: float | None  # the detector's; None when enrolled from an embedding
    source_digest: str  # SHA-256 hex of the image bytes, or of the float32 vector: one face per source per subject
    created_at: datetime
    # Five points (eyes, nose tip, mouth corners) in the image's pixels; None from an embedding or a
    # face stored before they were kept.
    landmarks: Landmarks | None = None
    quality: StoredQuality | None = None  # None from an embedding, or stored before it was kept
    photo_id: str | None = None  # the photo it was indexed from (photo search sees it)


def face_values_problem(landmarks: object, quality: object) -> str | None:
    """What makes these a face's landmarks and quality no store may hold (None: nothing). Also for
    values read back from a database, whatever their types."""
    if landmarks is not None and not (
        isinstance(landmarks, tuple)
        and len(landmarks) == 5
        and all(isinstance(point, tuple) and len(point) == 2 and all(_finite(v) for v in point) for point in landmarks)
    ):
        return "its landmarks are not five points of two finite numbers"
    if quality is None:
        return None
    if not isinstance(quality, StoredQuality) or not isinstance(quality.level, QualityLevel):
        return "its quality has no level"
    if not _finite(quality.score) or not 0.0 <= quality.score <= 1.0:
        return "its quality score is not a number from 0 to 1"
    reasons = quality.reasons
    if (
        not isinstance(reasons, tuple)
        or len(reasons) > len(QualityReason)
        or not all(isinstance(reason, QualityReason) for reason in reasons)
    ):
        return "its quality reasons are not quality reason codes"
    return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    external_id: str
    faces: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    photo_id: str
    source_digest: str  # SHA-256 hex of the image's bytes: the same id with other bytes is another photo
    faces: int  # faces indexed from it (0: it was indexed and holds none)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """A person: a group of a collection's faces that show one person (domain/people.py groups them)."""

    person_id: str  # 32 hex characters (a UUID), unique in the collection
    faces: int
    created_at: datetime
    representative: FaceRecord  # the face to show: the best quality score, then the first stored
    kept: bool = False  # shaped by hand (a merge, a split): a re-cluster keeps it whole and apart


@dataclass(frozen=True, slots=True)
class PhotoHit:
    """A photo's most similar face for one probe."""

    photo_id: str
    face_id: str
    similarity: float
    external_id: str | None  # the face's subject, when it is labelled
    bbox: tuple[float, float, float, float] | None


@dataclass(frozen=True, slots=True)
class PhotoCursor:
    """Where a page of a photo search ended: its last photo's similarity and id (ranked by similarity
    descending, then photo id)."""

    similarity: float
    photo_id: str

    def before(self, similarity: float, photo_id: str) -> bool:
        """Whether a photo ranked (similarity, photo_id) comes before this cursor (an earlier page)."""
        return similarity > self.similarity or (similarity == self.similarity and photo_id <= self.photo_id)


@dataclass(frozen=True, slots=True)
class PhotoSearchOutcome:
    hits: list[PhotoHit]  # at most top_k, after the cursor, best first, each photo once
    count: int  # photos whose best face reaches min_similarity, on every page
    method: str  # "exact" or "approximate"
    searched: int  # faces in the collection (as SearchOutcome's)


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
class QuarantinedCollection:
    """A collection the store found broken when it read it back: not served, kept for an operator."""

    name: str  # as stored (it may be the broken part)
    reason: str  # what is wrong, without paths or database addresses


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    created: bool  # the import created the collection
    added: int  # faces stored
    duplicates: int  # faces already there (same subject and source), kept once


@dataclass(frozen=True, slots=True)
class StoreHealth:
    store: str  # "sqlite", "postgresql" or "memory"
    ok: bool
    detail: str
    quarantined: tuple[QuarantinedCollection, ...] = ()
