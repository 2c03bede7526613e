"""What every collection use case holds to (collections.py: subjects; photos.py: photos): names and
ids, the model a collection is pinned to, quality floors, and the errors for a face that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import CollectionModelMismatch, FaceServiceError, InvalidInput
from domain.gallery import (
    CollectionInfo,
    StoredQuality,
    is_collection_name,
    is_external_id,
    is_face_id,
    is_photo_id,
)
from domain.ports import FaceGallery
from domain.quality import FaceQuality, QualityLevel, QualityReason


class NoFace(FaceServiceError):
    code = "no_face"


class MultipleFaces(FaceServiceError):
    code = "multiple_faces"


class PoorFace(FaceServiceError):
    """The face is below a floor the caller asked for (`code` says which; `reasons`, for the quality
    floor, the quality's reason codes)."""

    def __init__(self, message: str, code: str, reasons: tuple[QualityReason, ...] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class CollectionRules:
    """Limits of the collection use cases (the defaults live in the settings)."""

    default_threshold: float
    default_top_k: int
    max_top_k: int
    max_page: int


def checked_name(name: str) -> str:
    if not is_collection_name(name):
        raise InvalidInput(
            "A collection name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            code="invalid_collection_name",
            field="name",
        )
    return name


def checked_external_id(external_id: str) -> str:
    if not is_external_id(external_id):
        raise InvalidInput(
            "An external id is 1 to 128 letters, digits or . _ : @ + = -, and not '.' or '..'",
            code="invalid_external_id",
            field="external_id",
        )
    return external_id


def checked_photo_id(photo_id: str) -> str:
    if not is_photo_id(photo_id):
        raise InvalidInput(
            "A photo id is 1 to 128 letters, digits or . _ : @ + = -, and not '.' or '..'",
            code="invalid_photo_id",
            field="photo_id",
        )
    return photo_id


def checked_face_id(face_id: str) -> str:
    if not is_face_id(face_id):
        raise InvalidInput(
            "A face id is the 32 lowercase hex characters enrollment answered", code="invalid_face_id", field="face_id"
        )
    return face_id


def stored_quality(quality: FaceQuality | None) -> StoredQuality | None:
    """What a store keeps of a face's quality: its level, score and reasons (not the measures)."""
    return None if quality is None else StoredQuality(quality.level, quality.score, quality.reasons)


def at_least(quality: FaceQuality | None, floor: QualityLevel | None) -> bool:
    """Whether a face passes a quality floor. A face never assessed passes only when there is no floor."""
    return floor is None or (quality is not None and quality.level.at_least(floor))


def poor_quality(quality: FaceQuality | None, floor: QualityLevel | None) -> PoorFace:
    if quality is None:
        return PoorFace(f"The face's quality was not assessed; quality={floor} needs it", "low_quality_face", ())
    reasons = ", ".join(reason.value for reason in quality.reasons) or "none named"
    return PoorFace(
        f"The face's quality is {quality.level} (score {quality.score:.2f}; reasons: {reasons}); quality={floor} "
        "refuses it. Send a sharper, larger, better lit, frontal photo, or ask for a lower quality",
        "low_quality_face",
        quality.reasons,
    )


def pinned(gallery: FaceGallery, name: str, model_id: str) -> CollectionInfo:
    """The collection, when its vectors come from `model_id` (CollectionModelMismatch otherwise)."""
    collection = gallery.collection(checked_name(name))
    if collection.model_id != model_id:
        raise CollectionModelMismatch(
            f"Collection {name} holds vectors of model {collection.model_id}; this one is from {model_id}"
        )
    return collection
