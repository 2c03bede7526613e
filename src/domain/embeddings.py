"""Rules for embeddings that callers send back to us for comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from domain.errors import InvalidEmbedding
from domain.model import Vector

# The smallest norm whose unit vector float32 can hold: a shorter vector (all 1e-200, say) squares
# to zero or to sub-normal numbers, and its cosine with anything is undefined.
SMALLEST_NORM = 1e-30


def checked_embedding(values: Sequence[float] | Vector, dimension: int, field: str) -> Vector:
    """Return `values` as a float32 unit vector, or raise `InvalidEmbedding` naming `field`.

    A usable embedding has exactly `dimension` finite numbers, a norm that is neither zero, nor too
    small or too large to compute, so its cosine similarity with any other is defined.
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
    if norm < SMALLEST_NORM:
        raise InvalidEmbedding(f"{field} has values too small to compare (norm {norm:.3g})", field)
    unit = (vector / norm).astype(np.float32)
    if not np.isfinite(unit).all():  # pragma: no cover - guarded by the checks above
        raise InvalidEmbedding(f"{field} cannot be normalised", field)
    return unit


def checked_embeddings(rows: Sequence[Sequence[float]], dimension: int, field: str) -> Vector:
    """Many embeddings at once, as an (n, dimension) float32 matrix of unit rows.

    Checked in one vectorised pass; only when that finds a problem is the offending row located,
    so the error names it as `field[index]`.
    """
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except ValueError:  # ragged: some row has another length
        matrix = None
    if matrix is None or matrix.ndim != 2 or matrix.shape[1] != dimension:
        for index, row in enumerate(rows):
            checked_embedding(row, dimension, f"{field}[{index}]")
        raise InvalidEmbedding(f"{field} must be a list of embeddings", field)  # pragma: no cover
    norms = np.linalg.norm(matrix, axis=1)
    bad = ~np.isfinite(matrix).all(axis=1) | ~np.isfinite(norms) | (norms < SMALLEST_NORM)
    if bad.any():
        index = int(np.argmax(bad))
        checked_embedding(rows[index], dimension, f"{field}[{index}]")
    unit: Vector = (matrix / norms[:, None]).astype(np.float32)
    return unit
