"""The real backend's quality meter: each measure of `domain.quality.QualityMeasures` from the face's
aligned crop (the one the recogniser reads, or for /verify-face the part of it the measures read,
aligned by `align`), its box in the decoded image, and its landmarks. How it keeps a face's cost
down (several faces per OpenCV call, few calls for one) is in docs/quality.md, "Cost".

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

import math
import struct
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from adapters.models.alignment import ARCFACE_REFERENCE, similarity_transform
from adapters.quality.head_pose import head_poses
from domain.model import DetectedFace, Image, Pixels
from domain.quality import QualityMeasures

CROP = 112  # ArcFace's crop side, which the rows and columns below are in
INNER_ROWS, INNER_COLUMNS = slice(32, 104), slice(24, 88)  # eyes to mouth in the aligned crop
HALF_ROWS, HALF_COLUMNS = slice(16, 52), slice(12, 44)  # the same at half size
# What the measures read of a crop: the inner face with the one pixel (at half size) around it that
# the Laplacian reads; even bounds, so halving it halves the crop's own 2x2 blocks.
READ_ROWS, READ_COLUMNS = slice(30, 106), slice(22, 90)
JPEG_BLOCK = 8
# Blockiness reads a window twice the face's box around its centre (a photo is compressed as a whole:
# more blocks than a small face holds make a steadier measure), at most this many pixels a side.
BLOCK_WINDOW = 128
Floats = npt.NDArray[np.float32]
Floats64 = npt.NDArray[np.float64]
_FLOAT32 = struct.Struct("f")
_READ_SIZE = (READ_COLUMNS.stop - READ_COLUMNS.start, READ_ROWS.stop - READ_ROWS.start)  # width, height
_READ_REFERENCE = ARCFACE_REFERENCE - (READ_COLUMNS.start, READ_ROWS.start)  # the landmarks' places in it
_READ_CENTRE = tuple(float(v) for v in _READ_REFERENCE.sum(axis=0) / 5)
_READ_TARGET = (_READ_REFERENCE - _READ_CENTRE).T
# The parts of a read part each measure reads: the inner face, and the same at half size.
_INNER = (
    (INNER_ROWS.start - READ_ROWS.start, INNER_ROWS.stop - READ_ROWS.start),
    (INNER_COLUMNS.start - READ_COLUMNS.start, INNER_COLUMNS.stop - READ_COLUMNS.start),
)
_HALF_INNER = (
    (HALF_ROWS.start - READ_ROWS.start // 2, HALF_ROWS.stop - READ_ROWS.start // 2),
    (HALF_COLUMNS.start - READ_COLUMNS.start // 2, HALF_COLUMNS.stop - READ_COLUMNS.start // 2),
)


class OpenCVQualityMeter:
    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        """For faces no recogniser aligned (/verify-face): only the part of each ArcFace crop that the
        measures read, warped straight from the image (41% of the crop's pixels; the warp of the whole
        crop was a third of a face's assessment). The same pixels as that part of the recogniser's
        crop, but for OpenCV's rounding of the shifted coordinates: about one channel value in 3,000
        differs by a grey level (tests/integration/test_quality_meter.py bounds what that moves)."""
        return [
            np.asarray(cv2.warpAffine(image.pixels, matrix, _READ_SIZE, borderValue=0.0), dtype=np.uint8)
            for matrix in _read_matrices(faces)
        ]

    def measure(self, image: Image, faces: Sequence[DetectedFace], crops: Sequence[Pixels]) -> list[QualityMeasures]:
        if not faces:
            return []
        period = _block_period(image)
        sharpness, brightness, contrast = _crop_measures(crops)
        poses = head_poses([face.landmarks for face in faces])
        return [
            QualityMeasures(
                face_size=round(min(face.box.x2 - face.box.x1, face.box.y2 - face.box.y1), 1),
                eye_distance=round(_eye_distance(face), 1),
                pose=pose,
                sharpness=round(sharp, 4),
                brightness=round(mean / 255.0, 4),
                contrast=round(deviation / 255.0, 4),
                blockiness=None if period is None else round(_blockiness(image, face, period), 4),
                confidence=round(face.confidence, 4),
            )
            for face, pose, sharp, mean, deviation in zip(faces, poses, sharpness, brightness, contrast, strict=True)
        ]


def _read_matrices(faces: Sequence[DetectedFace]) -> list[Floats64]:
    """Each face's ArcFace similarity transform onto the read part: alignment.similarity_transform
    (Umeyama's closed form), for several faces in one numpy pass."""
    if len(faces) < 2:
        return [similarity_transform(np.asarray(face.landmarks, dtype=np.float64), _READ_REFERENCE) for face in faces]
    points = np.asarray([face.landmarks for face in faces], dtype=np.float64)  # (faces, 5, 2)
    centre = points.sum(axis=1) / 5
    x, y = np.moveaxis(points - centre[:, None], 2, 0)
    u, v = _READ_TARGET
    spread = (x * x + y * y).sum(axis=1)
    scale = np.where(spread > 0, spread, 1.0)
    a = np.where(spread > 0, (x * u + y * v).sum(axis=1) / scale, 1.0)
    b = np.where(spread > 0, (x * v - y * u).sum(axis=1) / scale, 0.0)
    (centre_x, centre_y), (target_x, target_y) = centre.T, _READ_CENTRE
    matrices = np.stack(
        [
            np.stack([a, -b, target_x - (a * centre_x - b * centre_y)], axis=1),
            np.stack([b, a, target_y - (b * centre_x + a * centre_y)], axis=1),
        ],
        axis=1,
    )
    return list(matrices)


def _eye_distance(face: DetectedFace) -> float:
    (left_x, left_y), (right_x, right_y) = face.landmarks[0], face.landmarks[1]
    return math.hypot(right_x - left_x, right_y - left_y)


def _crop_measures(crops: Sequence[Pixels]) -> tuple[list[float], list[float], list[float]]:
    """Sharpness, mean and standard deviation of the grey levels per crop. Most of a face's cost was
    per call (a cold cache after the models ran makes each OpenCV or numpy call cost 10-20 us, the
    pixels little), so one face takes the fewest calls and several faces are measured at once: their
    parts stacked into one column, each step run once. Both are the per-crop steps (2x2 means at half
    size, a 3x3 Laplacian read away from the stack's seams, OpenCV's sum-of-squares deviation): the
    same numbers as measuring each crop alone."""
    parts = [_read_part(crop) for crop in crops]
    grey = cv2.cvtColor(parts[0] if len(parts) == 1 else np.concatenate(parts), cv2.COLOR_BGR2GRAY).astype(np.float32)
    columns, rows = _READ_SIZE
    half = cv2.resize(grey, (columns // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
    edges = cv2.Laplacian(half, cv2.CV_32F)
    (top, bottom), (left, right) = _INNER
    (half_top, half_bottom), (half_left, half_right) = _HALF_INNER
    sharpness, means, deviations = [], [], []
    for start, half_start in zip(range(0, grey.shape[0], rows), range(0, half.shape[0], rows // 2), strict=True):
        (mean,), (deviation,) = cv2.meanStdDev(grey[start + top : start + bottom, left:right])
        half_deviation = cv2.meanStdDev(half[half_start + half_top : half_start + half_bottom, half_left:half_right])[1]
        edge_deviation = cv2.meanStdDev(edges[half_start + half_top : half_start + half_bottom, half_left:half_right])[
            1
        ]
        # A flat face (under a grey level) has no sharpness.
        sharpness.append(float(edge_deviation[0][0]) / max(float(half_deviation[0][0]), 1.0))
        means.append(float(mean[0]))
        deviations.append(float(deviation[0]))
    return sharpness, means, deviations


def _read_part(crop: Pixels) -> Pixels:
    """The part of a crop the measures read: all of one from `align`, that part of a recogniser's
    crop (one of another input size first brought to ArcFace's)."""
    if crop.shape[:2] == (_READ_SIZE[1], _READ_SIZE[0]):
        return crop
    if crop.shape[:2] != (CROP, CROP):
        crop = np.asarray(cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return crop[READ_ROWS, READ_COLUMNS]


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
    return min(_grid_contrast(across[0], period), _grid_contrast(down[:, 0], period))


def _grid_contrast(steps: npt.NDArray[Any], period: int) -> float:
    """How much larger the mean step between neighbouring pixels is on the strongest phase of a
    `period`-pixel grid than on the next strongest (plus half a grey level each, so a flat face reads
    1). A JPEG grid stands out on one phase; chance makes some phase the largest in any image, but
    seldom by much over the next, even over a few blocks.

    In single precision, as numpy's mean of the steps was: OpenCV sums the phases (the same
    row-by-row float32 sums), the rest is two numbers, rounded to float32 at each step in Python;
    the numpy calls it replaces cost more than their arithmetic once the models have run."""
    blocks = steps.size // period
    sums = cv2.reduce(steps[: blocks * period].reshape(blocks, period), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F)
    second, first = sorted(sums[0].tolist())[-2:]  # the mean's order is the sum's
    return _single(_single(_single(first / blocks) + 0.5) / _single(_single(second / blocks) + 0.5))


def _single(value: float) -> float:
    """`value` rounded to float32 (one operation in double rounded once gives float32's own result)."""
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
