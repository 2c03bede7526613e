"""The error map of the contract: which HTTP status and JSON body each domain error answers with.
Transport-neutral, so that an inference worker renders its errors exactly as the HTTP adapter does
(domain errors do not survive pickling between processes; their rendering does)."""

from __future__ import annotations

from adapters.wire.bodies import RequestTooLarge, UnsupportedMediaType
from adapters.wire.schemas import ErrorResponse
from domain.access import ForbiddenScope
from domain.errors import (
    BatchTooLarge,
    ClusteringNotStarted,
    CollectionExists,
    CollectionModelMismatch,
    CollectionNotFound,
    CollectionUnavailable,
    CorrectionsKeptArriving,
    EnrolledFaceRefused,
    FaceNotFound,
    FaceServiceError,
    GalleryLimitExceeded,
    ImageTooLarge,
    InvalidEmbedding,
    InvalidInput,
    ModelMismatch,
    PeopleNamedDifferently,
    PersonNotFound,
    PhotoExists,
    PhotoNotFound,
    StoreUnavailable,
    SubjectNotFound,
    UndecodableImage,
    UnsupportedImageFormat,
)
from domain.use_cases.collections import MultipleFaces, NoFace, PoorFace

DOMAIN_STATUS: dict[type[FaceServiceError], int] = {
    InvalidInput: 400,
    ForbiddenScope: 403,
    ImageTooLarge: 413,
    BatchTooLarge: 413,
    UnsupportedImageFormat: 415,
    UndecodableImage: 422,
    InvalidEmbedding: 422,
    ModelMismatch: 422,
    UnsupportedMediaType: 415,
    RequestTooLarge: 413,
    CollectionNotFound: 404,
    SubjectNotFound: 404,
    FaceNotFound: 404,
    PhotoNotFound: 404,
    PersonNotFound: 404,
    ClusteringNotStarted: 404,
    CollectionExists: 409,
    PhotoExists: 409,
    CollectionModelMismatch: 409,
    GalleryLimitExceeded: 409,
    PeopleNamedDifferently: 409,
    CorrectionsKeptArriving: 409,
    EnrolledFaceRefused: 409,
    NoFace: 422,
    MultipleFaces: 422,
    PoorFace: 422,
    StoreUnavailable: 503,
    CollectionUnavailable: 503,
}


def status_for(error: FaceServiceError) -> int:
    for kind in type(error).__mro__:
        if kind in DOMAIN_STATUS:
            return DOMAIN_STATUS[kind]  # type: ignore[index]
    return 400


def body_for(error: FaceServiceError) -> ErrorResponse:
    reasons = error.reasons if isinstance(error, PoorFace) else None
    return ErrorResponse(
        error=error.message,
        code=error.code,
        field=getattr(error, "field", None),
        line=getattr(error, "line", None),
        # The wire's literals spell the domain's reason codes (tests/unit/test_quality.py keeps them equal).
        reasons=[reason.value for reason in reasons] if reasons is not None else None,  # type: ignore[misc]
    )
