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
    `target` in the least-squares sense (Umeyama 1991, without reflection).

    In two dimensions Umeyama's solution has a closed form: with the points as complex numbers
    centred on their means, the rotation and scale are the one complex factor
    z = sum(conj(s) * t) / sum(|s|^2). Plain floats: five points cost microseconds, where numpy's SVD
    call cost a tenth of a millisecond per face."""
    points = [(float(x), float(y)) for x, y in source]
    targets = [(float(x), float(y)) for x, y in target]
    count = len(points)
    source_x, source_y = sum(x for x, _ in points) / count, sum(y for _, y in points) / count
    target_x, target_y = sum(x for x, _ in targets) / count, sum(y for _, y in targets) / count
    real = imaginary = spread = 0.0
    for (x, y), (u, v) in zip(points, targets, strict=True):
        x, y, u, v = x - source_x, y - source_y, u - target_x, v - target_y
        real += x * u + y * v  # conj(x + iy) * (u + iv)
        imaginary += x * v - y * u
        spread += x * x + y * y
    a, b = (real / spread, imaginary / spread) if spread > 0 else (1.0, 0.0)
    return np.array(
        [
            [a, -b, target_x - (a * source_x - b * source_y)],
            [b, a, target_y - (b * source_x + a * source_y)],
        ]
    )


def align_face(pixels: Pixels, landmarks: npt.NDArray[np.float64], size: int = 112) -> Pixels:
    """Warp the face with these five landmarks into a `size`x`size` ArcFace crop."""
    if size % 112 == 0:
        reference = ARCFACE_REFERENCE * (size / 112.0)
    else:  # 128-based crops, as insightface's estimate_norm
        reference = ARCFACE_REFERENCE * (size / 128.0)
        reference[:, 0] += 8.0 * size / 128.0
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), reference)
    return np.asarray(cv2.warpAffine(pixels, matrix, (size, size), borderValue=0.0), dtype=np.uint8)
