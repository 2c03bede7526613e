"""The JSON of the photo routes (docs/api.md, "Photos"): responses, their presenters (rounded as the
face routes round), and the photo search's opaque cursor."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime

import msgspec

from adapters.wire import presenters
from adapters.wire.collections import Box, FaceQuality, QueryFace, box, face_quality, landmarks, query_face
from adapters.wire.presenters import similarity
from domain.errors import InvalidInput
from domain.gallery import FaceRecord, PhotoCursor, PhotoInfo, is_photo_id
from domain.model import DetectedFace
from domain.use_cases.photos import PhotoIndexing, PhotoSearchResult


class IndexedFace(msgspec.Struct, omit_defaults=True):
    face_id: str
    bbox: Box
    confidence: float
    landmarks: list[list[float]]
    quality: FaceQuality | None = None


class UnindexedFace(msgspec.Struct, omit_defaults=True):
    bbox: Box
    confidence: float
    # Why it was not indexed: LOW_QUALITY and the quality's reasons, EXCEEDS_MAX_FACES or SMALL_BOUNDING_BOX.
    reasons: list[str]
    quality: FaceQuality | None = None


class IndexPhotoResponse(msgspec.Struct):
    photo_id: str
    duplicate: bool  # indexed before from the same bytes: the stored photo, nothing run
    model: str
    created_at: datetime
    faces: list[IndexedFace]
    unindexed: list[UnindexedFace]


class PhotoSummary(msgspec.Struct):
    photo_id: str
    faces: int
    created_at: datetime


class PhotosResponse(msgspec.Struct):
    photos: list[PhotoSummary]
    next: str | None  # the cursor for the next page (`after=`), or null on the last


class PhotoFace(msgspec.Struct, omit_defaults=True):
    face_id: str
    external_id: str | None  # null while the face is nobody's
    created_at: datetime
    bbox: Box | None = None
    landmarks: list[list[float]] | None = None
    confidence: float | None = None
    quality: FaceQuality | None = None


class PhotoResponse(msgspec.Struct):
    photo_id: str
    created_at: datetime
    source_digest: str
    faces: list[PhotoFace]


class DeletedPhotoResponse(msgspec.Struct):
    photo_id: str
    deleted_faces: int


class PhotoMatch(msgspec.Struct):
    photo_id: str
    face_id: str  # the photo's most similar face
    bbox: Box | None
    similarity: float
    match: bool  # similarity >= the collection's threshold
    external_id: str | None


class PhotoSearchResponse(msgspec.Struct):
    collection: str
    model: str
    method: str  # "exact" or "approximate"
    searched_faces: int
    probe: QueryFace | None  # null when the query was an embedding
    threshold: float  # the collection's: what `match` compares with
    count: int  # photos at or above `min_similarity`, on every page
    photos: list[PhotoMatch]
    next: str | None  # the cursor for the next page (`after=`), or null on the last


def _confidence(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def indexed_photo(result: PhotoIndexing) -> IndexPhotoResponse:
    return IndexPhotoResponse(
        photo_id=result.photo.photo_id,
        duplicate=result.duplicate,
        model=result.model_id,
        created_at=result.photo.created_at,
        faces=[
            IndexedFace(
                face_id=face.face_id,
                bbox=box(face.bbox) or [],
                confidence=_confidence(face.confidence) or 0.0,
                landmarks=landmarks(face.landmarks) or [],
                quality=face_quality(face.quality),
            )
            for face in result.faces
        ],
        unindexed=[_unindexed(face, reasons) for face, reasons in result.unindexed],
    )


def _unindexed(face: DetectedFace, reasons: tuple[str, ...]) -> UnindexedFace:
    assessed = face.quality
    quality = None
    if assessed is not None:
        quality = FaceQuality(assessed.level.value, assessed.score, [reason.value for reason in assessed.reasons])
    return UnindexedFace(presenters.box(face), presenters.confidence(face), list(reasons), quality)


def photos(page: list[PhotoInfo], limit: int) -> PhotosResponse:
    next_cursor = page[-1].photo_id if len(page) == limit else None
    return PhotosResponse([PhotoSummary(p.photo_id, p.faces, p.created_at) for p in page], next_cursor)


def photo(info: PhotoInfo, faces: list[FaceRecord]) -> PhotoResponse:
    return PhotoResponse(
        info.photo_id,
        info.created_at,
        info.source_digest,
        [
            PhotoFace(
                face_id=f.face_id,
                external_id=f.external_id,
                created_at=f.created_at,
                bbox=box(f.bbox),
                landmarks=landmarks(f.landmarks),
                confidence=_confidence(f.confidence),
                quality=face_quality(f.quality),
            )
            for f in faces
        ],
    )


def photo_search(result: PhotoSearchResult) -> PhotoSearchResponse:
    outcome, collection = result.outcome, result.collection
    last = outcome.hits[-1] if outcome.hits and result.more else None
    return PhotoSearchResponse(
        collection=collection.name,
        model=collection.model_id,
        method=outcome.method,
        searched_faces=outcome.searched,
        probe=query_face(result.probe) if result.probe is not None else None,
        threshold=collection.threshold,
        count=outcome.count,
        photos=[
            PhotoMatch(
                hit.photo_id,
                hit.face_id,
                box(hit.bbox),
                similarity(hit.similarity),
                hit.similarity >= collection.threshold,
                hit.external_id,
            )
            for hit in outcome.hits
        ],
        next=None if last is None else encode_cursor(PhotoCursor(last.similarity, last.photo_id)),
    )


def encode_cursor(cursor: PhotoCursor) -> str:
    """Opaque to the caller: the last photo's exact similarity and id, as base64url of JSON."""
    return base64.urlsafe_b64encode(msgspec.json.encode([cursor.similarity, cursor.photo_id])).decode().rstrip("=")


def decode_cursor(text: str | None) -> PhotoCursor | None:
    """A `next` this service gave; anything else is 400 `invalid_cursor`. Empty: the first page, as
    the lists read `after=`."""
    if not text:
        return None
    bad = InvalidInput(
        "after must be the `next` of a previous page of this search", code="invalid_cursor", field="after"
    )
    if len(text) > 400:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value, photo_id = msgspec.json.decode(raw, type=tuple[float, str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise bad from None
    if not math.isfinite(value) or not -1.5 <= value <= 1.5 or not is_photo_id(photo_id):
        raise bad
    return PhotoCursor(value, photo_id)
