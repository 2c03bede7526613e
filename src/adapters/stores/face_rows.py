"""A face's row as both SQL stores read it back: one column order, one FaceRecord."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.gallery import FaceRecord

# The columns `face_record` takes, in its order (the box as four nullable columns).
COLUMNS = ("face_id", "external_id", "embedding", "x1", "y1", "x2", "y2", "confidence", "source_digest", "created_at")


def face_record(row: Sequence[Any]) -> FaceRecord:
    """A face from COLUMNS' values, its embedding and time already decoded."""
    face_id, external_id, embedding, x1, y1, x2, y2, confidence, digest, created_at = row
    return FaceRecord(
        face_id=face_id,
        external_id=external_id,
        embedding=embedding,
        bbox=None if x1 is None else (x1, y1, x2, y2),
        confidence=confidence,
        source_digest=digest,
        created_at=created_at,
    )
