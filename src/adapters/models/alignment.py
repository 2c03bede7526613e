"""ArcFace face alignment: the 5-point similarity transform onto InsightFace's reference landmarks.

Same least-squares (Umeyama) solution as insightface's `face_align.norm_crop`, which goes through
scikit-image; solved here in closed form with numpy, without that import and its per-call overhead.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from domain.model import Pixels

# InsightFace's arcface_dst: where the five landmarks sit in a 112x112 aligned crop.
ARCFACE_REFERENCE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 2x3 matrix of the rotation + uniform scale + translation that best maps `source` onto
    `target` in the least-squares sense (Umeyama 1991, without reflection)."""
    src_mean = source.mean(axis=0)
    dst_mean = target.mean(axis=0)
    src = source - src_mean
    dst = target - dst_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = src.var(axis=0).sum()
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(pixels: Pixels, landmarks: npt.NDArray[np.float64], size: int = 112) -> Pixels:
    """Warp the face with these five landmarks into a `size`x`size` ArcFace crop."""
    if size % 112 == 0:
        reference = ARCFACE_REFERENCE * (size / 112.0)
    else:  # 128-based crops, as insightface's estimate_norm
        reference = ARCFACE_REFERENCE * (size / 128.0)
        reference[:, 0] += 8.0 * size / 128.0
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), reference)
    return np.asarray(cv2.warpAffine(pixels, matrix, (size, size), borderValue=0.0), dtype=np.uint8)
