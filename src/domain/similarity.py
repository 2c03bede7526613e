"""Cosine similarity, the comparison ArcFace embeddings are trained for."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.model import Vector


class CosineSimilarity:
    """Cosine of the angle between vectors, in [-1, 1]. Works on unnormalised input too."""

    def scores(self, probe: Vector, candidates: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        probe64 = probe.astype(np.float64)
        cands64 = candidates.astype(np.float64)
        norms = np.linalg.norm(cands64, axis=1) * np.linalg.norm(probe64)
        result = (cands64 @ probe64) / norms
        clipped: npt.NDArray[np.float32] = np.clip(result, -1.0, 1.0).astype(np.float32)
        return clipped
