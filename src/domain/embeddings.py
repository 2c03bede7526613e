"""Rules for embeddings that callers send back to us for comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from domain.errors import InvalidEmbedding
from domain.model import Vector


def checked_embedding(values: Sequence[float], dimension: int, field: str) -> Vector:
    """Return `values` as a float32 vector, or raise `InvalidEmbedding` naming `field`.

    A usable embedding has exactly `dimension` finite numbers and is not the zero vector
    (cosine similarity is undefined for it).
    """
    if len(values) != dimension:
        raise InvalidEmbedding(f"{field} must have {dimension} numbers, got {len(values)}", field)
    vector = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(vector)):
        raise InvalidEmbedding(f"{field} contains a non-finite number (NaN or infinity)", field)
    if not np.any(vector):
        raise InvalidEmbedding(f"{field} is the zero vector", field)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm):
        raise InvalidEmbedding(f"{field} has values too large to compare", field)
    return (vector / norm).astype(np.float32)
