"""A face's row as both SQL stores read it back: one column order, one FaceRecord.

Landmarks and quality are JSON text in both stores (`[[x, y] x5]`, `{"level", "score", "reasons"}`):
small, read only with the face, never searched on. A value that does not decode to what a write
could have stored makes the face unreadable (CollectionUnavailable), never a wrong answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from domain.errors import CollectionUnavailable
from domain.gallery import FaceRecord, Landmarks, StoredQuality, face_values_problem
from domain.quality import QualityLevel, QualityReason

# The columns `face_record` takes, in its order (the box as four nullable columns).
COLUMNS = (
    "face_id",
    "external_id",
    "embedding",
    "x1",
    "y1",
    "x2",
    "y2",
    "confidence",
    "source_digest",
    "created_at",
    "landmarks",
    "quality",
    "photo_id",
)


class _Quality(msgspec.Struct, forbid_unknown_fields=True):
    level: str
    score: float
    reasons: list[str]


_encoder = msgspec.json.Encoder()
_landmarks_decoder = msgspec.json.Decoder(list[tuple[float, float]])
_quality_decoder = msgspec.json.Decoder(_Quality)


def landmarks_text(landmarks: Landmarks | None) -> str | None:
    return None if landmarks is None else _encoder.encode([list(point) for point in landmarks]).decode()


def quality_text(quality: StoredQuality | None) -> str | None:
    if quality is None:
        return None
    stored = _Quality(quality.level.value, quality.score, [reason.value for reason in quality.reasons])
    return _encoder.encode(stored).decode()


def face_record(row: Sequence[Any]) -> FaceRecord:
    """A face from COLUMNS' values, its embedding and time already decoded."""
    face_id, external_id, embedding, x1, y1, x2, y2, confidence, digest, created_at, landmarks, quality, photo = row
    return FaceRecord(
        face_id=face_id,
        external_id=external_id,
        embedding=embedding,
        bbox=None if x1 is None else (x1, y1, x2, y2),
        confidence=confidence,
        source_digest=digest,
        created_at=created_at,
        landmarks=_landmarks(landmarks),
        quality=_quality(quality),
        photo_id=photo,
    )


def _landmarks(text: object) -> Landmarks | None:
    if text is None:
        return None
    try:
        points = tuple(_landmarks_decoder.decode(_bytes(text)))
    except (msgspec.DecodeError, TypeError, ValueError):
        raise _unreadable("its landmarks cannot be read") from None
    problem = face_values_problem(points, None)
    if problem is not None or len(points) != 5:
        raise _unreadable(problem or "its landmarks are not five points")
    return (points[0], points[1], points[2], points[3], points[4])


def _quality(text: object) -> StoredQuality | None:
    if text is None:
        return None
    try:
        found = _quality_decoder.decode(_bytes(text))
        quality = StoredQuality(
            QualityLevel(found.level), found.score, tuple(QualityReason(reason) for reason in found.reasons)
        )
    except (msgspec.DecodeError, TypeError, ValueError):
        raise _unreadable("its quality cannot be read") from None
    problem = face_values_problem(None, quality)
    if problem is not None:
        raise _unreadable(problem)
    return quality


def _bytes(text: object) -> bytes:
    if isinstance(text, str):
        return text.encode()
    if isinstance(text, bytes):
        return text
    raise TypeError("not text")


def _unreadable(problem: str) -> CollectionUnavailable:
    return CollectionUnavailable(f"the collection holds a face the store cannot read back: {problem}")
