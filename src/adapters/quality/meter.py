"""The real backend's quality meter: each measure of `domain.quality.QualityMeasures` from the face's
aligned crop (the one the recogniser reads), its box in the decoded image, and its landmarks.

Why these measures (bench/quality.py measured each against degraded copies of the bundled photos;
docs/quality.md has the figures):
- sharpness: the Laplacian's standard deviation on the crop at half size (56x56), divided by the
  grey levels' own, over the inner face. Dividing makes it blind to exposure (a dark face is not a
  blurred one); at full size the Laplacian mostly sees the noise and interpolation of enlarged small
  faces and does not fall steadily with blur, at half size it falls at every step of blur.
- brightness and contrast: mean and standard deviation of the inner face's grey levels.
- blockiness: JPEG's 8x8 blocks. Neither sharpness nor contrast sees heavy JPEG compression (its
  blocks add edges while it removes detail), which costs recognition as much as blur. The edges on
  strongest column phase of every 8 against the next strongest, and the same for rows, the smaller
  of the two, on the decoded image around the face (a window twice its box): the grid's phase is
  found, not assumed, so a crop or an EXIF rotation of a JPEG does not hide it.
- pose: the five landmarks (head_pose.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from adapters.quality.head_pose import head_pose
from domain.model import DetectedFace, Image, Pixels
from domain.quality import QualityMeasures

CROP = 112  # ArcFace's crop side, which the rows and columns below are in
INNER_ROWS, INNER_COLUMNS = slice(32, 104), slice(24, 88)  # eyes to mouth in the aligned crop
HALF_ROWS, HALF_COLUMNS = slice(16, 52), slice(12, 44)  # the same at half size
JPEG_BLOCK = 8
# Blockiness reads a window twice the face's box around its centre (a photo is compressed as a whole:
# more blocks than a small face holds make a steadier measure), at most this many pixels a side.
BLOCK_WINDOW = 128
Floats = npt.NDArray[np.float32]


class OpenCVQualityMeter:
    def measure(self, image: Image, faces: Sequence[DetectedFace], crops: Sequence[Pixels]) -> list[QualityMeasures]:
        period = _block_period(image)
        return [self._measures(image, face, crop, period) for face, crop in zip(faces, crops, strict=True)]

    def _measures(self, image: Image, face: DetectedFace, crop: Pixels, period: int | None) -> QualityMeasures:
        if crop.shape[:2] != (CROP, CROP):  # a recogniser of another input size: measured at ArcFace's
            crop = np.asarray(cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        mean, deviation = (float(v[0][0]) for v in cv2.meanStdDev(grey[INNER_ROWS, INNER_COLUMNS]))
        (left_x, left_y), (right_x, right_y) = face.landmarks[0], face.landmarks[1]
        box = face.box
        return QualityMeasures(
            face_size=round(min(box.x2 - box.x1, box.y2 - box.y1), 1),
            eye_distance=round(float(np.hypot(right_x - left_x, right_y - left_y)), 1),
            pose=head_pose(face.landmarks),
            sharpness=round(_sharpness(grey), 4),
            brightness=round(mean / 255.0, 4),
            contrast=round(deviation / 255.0, 4),
            blockiness=None if period is None else round(_blockiness(image, face, period), 4),
            confidence=round(face.confidence, 4),
        )


def _sharpness(grey: Floats) -> float:
    half = cv2.resize(grey, (CROP // 2, CROP // 2), interpolation=cv2.INTER_AREA)
    edges = cv2.Laplacian(half, cv2.CV_32F)
    edge_deviation = cv2.meanStdDev(edges[HALF_ROWS, HALF_COLUMNS])[1][0][0]
    deviation = cv2.meanStdDev(half[HALF_ROWS, HALF_COLUMNS])[1][0][0]
    return float(edge_deviation) / max(float(deviation), 1.0)  # a flat face (under a grey level) has none


def _block_period(image: Image) -> int | None:
    """JPEG's block side in the decoded pixels: 8, or 4 for an image decoded at half size
    (FAST_JPEG_DECODE); None when smaller, where blocks cannot be told from detail."""
    period = round(JPEG_BLOCK * image.width / image.source_width)
    return period if period >= JPEG_BLOCK // 2 else None


def _blockiness(image: Image, face: DetectedFace, period: int) -> float:
    box = face.box.clipped(image.width, image.height)
    centre_x, centre_y = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    half_width = min(2 * (box.x2 - box.x1), BLOCK_WINDOW) / 2
    half_height = min(2 * (box.y2 - box.y1), BLOCK_WINDOW) / 2
    left, top = max(0, int(centre_x - half_width)), max(0, int(centre_y - half_height))
    right, bottom = min(image.width, int(centre_x + half_width) + 1), min(image.height, int(centre_y + half_height) + 1)
    if right - left < 2 * period + 1 or bottom - top < 2 * period + 1:
        return 1.0  # too few blocks to compare: none seen
    grey = cv2.cvtColor(image.pixels[top:bottom, left:right], cv2.COLOR_BGR2GRAY)
    across = cv2.reduce(cv2.absdiff(grey[:, 1:], grey[:, :-1]), 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    down = cv2.reduce(cv2.absdiff(grey[1:], grey[:-1]), 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    # JPEG's grid runs both ways; resampling (a resize, a warp) can leave a period in one direction only.
    return min(_grid_contrast(np.ravel(across), period), _grid_contrast(np.ravel(down), period))


def _grid_contrast(steps: npt.NDArray[np.floating[Any]], period: int) -> float:
    """How much larger the mean step between neighbouring pixels is on the strongest phase of a
    `period`-pixel grid than on the next strongest (plus half a grey level each, so a flat face reads
    1). A JPEG grid stands out on one phase; chance makes some phase the largest in any image, but
    seldom by much over the next, even over a few blocks."""
    whole = steps.size - steps.size % period
    means = np.sort(steps[:whole].reshape(-1, period).mean(axis=0))
    return float((means[-1] + 0.5) / (means[-2] + 0.5))
