"""Errors the domain and its use cases raise. Each carries a stable machine-readable code.

Adapters map these to transport responses in one place (HTTP: `adapters.http.errors`).
"""

from __future__ import annotations


class FaceServiceError(Exception):
    """Base class: `code` is stable and documented; the message is for a person."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FaceServiceError):
    """The request is malformed (bad JSON, bad base64, missing field)."""

    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field


class UnsupportedImageFormat(FaceServiceError):
    """The bytes are not an image format the service decodes."""

    code = "unsupported_image_format"


class UndecodableImage(FaceServiceError):
    """The bytes claim a supported format but cannot be decoded (truncated, corrupt)."""

    code = "invalid_image"


class ImageTooLarge(FaceServiceError):
    """The image exceeds a configured size limit (bytes, pixels or side length)."""

    code = "image_too_large"


class InvalidEmbedding(FaceServiceError):
    """An embedding sent for comparison is unusable: wrong length, non-finite values, or all zeros."""

    code = "invalid_embedding"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class ModelMismatch(FaceServiceError):
    """Two embeddings declare different models; their similarity would be meaningless."""

    code = "model_mismatch"


class BatchTooLarge(FaceServiceError):
    """More images in one batch than the configured limit."""

    code = "batch_too_large"


class BatchFaceLimit(FaceServiceError):
    """A batch item whose faces would take the request past MAX_BATCH_FACES embedded faces."""

    code = "batch_face_limit"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The batch reached its limit of {limit} embedded faces before this image")


class ModelUnavailable(FaceServiceError):
    """A model file is missing or unreadable. Raised at start-up, never per request."""

    code = "model_unavailable"


class CollectionNotFound(FaceServiceError):
    code = "collection_not_found"


class SubjectNotFound(FaceServiceError):
    code = "subject_not_found"


class FaceNotFound(FaceServiceError):
    code = "face_not_found"


class PhotoNotFound(FaceServiceError):
    code = "photo_not_found"


class PersonNotFound(FaceServiceError):
    code = "person_not_found"


class PeopleNamedDifferently(FaceServiceError):
    """A merge of two people holding faces of different subjects, or a naming of a person holding faces
    of another subject: two subjects are never one person."""

    code = "people_named_differently"


class CorrectionsKeptArriving(FaceServiceError):
    """A re-cluster found the people corrected while it ran, every time it tried to store its groups
    (`People.recluster`): it stored nothing rather than undo a correction."""

    code = "corrections_kept_arriving"


class EnrolledFaceRefused(FaceServiceError):
    """ "Not this person" on a face enrolled to a subject (not from a photo): the subject says it is this
    person, so the face is deleted from the subject instead (`DELETE .../faces/{face_id}`)."""

    code = "face_enrolled_to_subject"


class ClusteringNotStarted(FaceServiceError):
    """No re-cluster of the collection was ever started (or the collection was made again since)."""

    code = "clustering_not_started"


class PhotoExists(FaceServiceError):
    """The photo id is taken by a photo of other bytes: delete it first."""

    code = "photo_exists"


class CollectionExists(FaceServiceError):
    code = "collection_exists"


class CollectionModelMismatch(FaceServiceError):
    """A vector from another model than the collection's: never stored in it or searched against it."""

    code = "model_mismatch"


class GalleryLimitExceeded(FaceServiceError):
    """A configured gallery limit (collections, subjects, faces) would be exceeded."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class StoreUnavailable(FaceServiceError):
    """The gallery's database cannot be reached or is failing; the stateless face routes still work."""

    code = "store_unavailable"


class CollectionUnavailable(FaceServiceError):
    """The store read the collection back broken (a value no write could have stored): it is not
    served until an operator deletes or repairs it; the other collections are served."""

    code = "collection_unavailable"


class InvalidImport(InvalidInput):
    """A line of an import is unusable (`line` 1 is the header); nothing of the import is kept."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}", code="invalid_import")
        self.line = line
