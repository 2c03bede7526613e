"""Head pose from the detector's five landmarks: the scaled-orthographic camera that best projects a
3D mean face's five points onto them (least squares), decomposed into yaw, pitch and roll.

The method is insightface's for its 68-point 3D landmarks (`face3d` `estimate_affine_matrix_3d23d`,
`P2sRt`, `matrix2angle`), applied to five points. The 3D points: across and down, ArcFace's frontal
five-point reference (where SCRFD's points sit on a frontal face, so a frontal face reads 0 degrees);
in depth, insightface's mean face (`meanshape_68.pkl`: the mean of points 36-41 and 42-47 for the
eyes, 30 for the nose tip, 48 and 54 for the mouth corners), scaled to the reference's eye distance.
tests/integration/test_quality.py recomputes the depths from that file. bench/quality.py measures the
estimate against insightface's 106-point landmarks (2d106det) fitted the same way, and against
synthetic turns of the bundled photos (docs/quality.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from adapters.models.alignment import ARCFACE_REFERENCE
from domain.model import Point
from domain.quality import HeadPose

# Depth (toward the camera) of left eye, right eye, nose tip, left and right mouth corner, in the
# pixels of ArcFace's 112x112 reference, from insightface's meanshape_68 (see above).
MEAN_FACE_DEPTH = np.array([-5.6202, -5.2395, 13.3896, -1.1369, -1.393])

_MEAN_FACE = np.column_stack([ARCFACE_REFERENCE - ARCFACE_REFERENCE.mean(axis=0), MEAN_FACE_DEPTH, np.ones(5)])
# The least-squares camera is this fixed 4x5 matrix times the centred landmarks: a few products per
# face, in plain Python (numpy's call overhead on 5x2 arrays would cost more than the arithmetic).
_SOLVE: tuple[tuple[float, ...], ...] = tuple(tuple(float(v) for v in row) for row in np.linalg.pinv(_MEAN_FACE)[:3])
_SOLVE_COLUMNS = np.array(_SOLVE).T  # (5, 3): the same products for many faces in one numpy call


def head_poses(faces: Sequence[tuple[Point, Point, Point, Point, Point]]) -> list[HeadPose]:
    """`head_pose` of each face's landmarks: in plain Python for one face, in numpy for several (the
    same arithmetic; the angles agree to far below their 0.1-degree rounding)."""
    if len(faces) < 2:
        return [head_pose(landmarks) for landmarks in faces]
    points = np.asarray(faces, dtype=np.float64)  # (faces, 5, 2)
    centred = points - points.sum(axis=1, keepdims=True) / 5
    rows = np.swapaxes(centred, 1, 2) @ _SOLVE_COLUMNS  # (faces, 2, 3): the camera's rows
    norms = np.hypot(np.hypot(rows[..., 0], rows[..., 1]), rows[..., 2])
    flat = (norms < 1e-9).any(axis=1)  # every point in one place: no pose to read
    (a, b, c), (d, e, f) = np.moveaxis(rows / np.where(flat[:, None], 1.0, norms)[..., None], 0, 2)
    third = (b * f - c * e, c * d - a * f, a * e - b * d)
    yaw = np.degrees(np.arctan2(-third[0], np.hypot(a, d)))
    pitch = np.degrees(np.arctan2(third[1], third[2]))
    roll = np.degrees(np.arctan2(d, a))
    return [
        HeadPose(0.0, 0.0, 0.0) if none else HeadPose(round(y, 1), round(p, 1), round(r, 1))
        for none, y, p, r in zip(flat.tolist(), yaw.tolist(), pitch.tolist(), roll.tolist(), strict=True)
    ]


def head_pose(landmarks: tuple[Point, Point, Point, Point, Point]) -> HeadPose:
    mean_x = sum(x for x, _ in landmarks) / 5
    mean_y = sum(y for _, y in landmarks) / 5
    # The camera's rows (how x and y in the image follow the face's 3 axes), then normalised.
    first = [sum(w * (x - mean_x) for w, (x, _) in zip(row, landmarks, strict=True)) for row in _SOLVE]
    second = [sum(w * (y - mean_y) for w, (_, y) in zip(row, landmarks, strict=True)) for row in _SOLVE]
    first_norm, second_norm = math.hypot(*first), math.hypot(*second)
    if first_norm < 1e-9 or second_norm < 1e-9:  # every point in one place: no pose to read
        return HeadPose(0.0, 0.0, 0.0)
    (a, b, c), (d, e, f) = (v / first_norm for v in first), (v / second_norm for v in second)
    third = (b * f - c * e, c * d - a * f, a * e - b * d)  # first x second
    return HeadPose(
        yaw=round(math.degrees(math.atan2(-third[0], math.hypot(a, d))), 1),
        pitch=round(math.degrees(math.atan2(third[1], third[2])), 1),
        roll=round(math.degrees(math.atan2(d, a)), 1),
    )
