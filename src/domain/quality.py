"""Face quality: how much of a face's identity an embedding of it can be trusted to carry.

Pure rules, no pixels: a `QualityMeter` (domain/ports.py) measures each face, `assess` turns the
measures into a level, a score and the reasons. The numbers in `DEFAULT_RULES` were calibrated by
`bench/quality.py` on degraded copies of the real photos that ship with the install
(docs/quality.md has the figures, the command and why each number is what it is).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import StrEnum


class QualityLevel(StrEnum):
    """Ordered: `level.at_least(QualityLevel.MEDIUM)` is what an enrollment filter asks."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: QualityLevel) -> bool:
        return self.rank >= other.rank


_RANKS = {QualityLevel.LOW: 0, QualityLevel.MEDIUM: 1, QualityLevel.HIGH: 2}


class QualityReason(StrEnum):
    """Why a face is not of high quality: stable codes, as Rekognition's `UnindexedFaces` reasons."""

    EXTREME_POSE = "EXTREME_POSE"  # turned or tilted past the recommended angles
    LOW_CONFIDENCE = "LOW_CONFIDENCE"  # the detector is unsure it is a face
    SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"  # too few pixels across the face
    LOW_SHARPNESS = "LOW_SHARPNESS"  # blurred: out of focus, moving, or enlarged
    COMPRESSION_ARTIFACTS = "COMPRESSION_ARTIFACTS"  # JPEG blocks
    LOW_BRIGHTNESS = "LOW_BRIGHTNESS"  # too dark to show the face's detail
    HIGH_BRIGHTNESS = "HIGH_BRIGHTNESS"  # over-exposed: detail clipped to white
    LOW_CONTRAST = "LOW_CONTRAST"  # washed out (haze, glare, flat light)


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Degrees. yaw > 0: the face turns toward the image's right; pitch > 0: it tilts up; roll > 0: it
    is rotated clockwise as seen in the image."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, slots=True)
class QualityMeasures:
    """What a meter measures of one face, in the pixels the models read.

    `face_size` is the box's shorter side and `eye_distance` the distance between the eye centres,
    in pixels. `sharpness` is the detail of the aligned face (about 0.8 for a sharp face, under 0.3
    for a blurred one), `brightness` and `contrast` the mean and standard deviation of its grey
    levels (0..1), `blockiness` how much stronger the edges on the JPEG 8-pixel grid are than
    elsewhere (1: none; None where it cannot be measured), `confidence` the detector's.
    """

    face_size: float
    eye_distance: float
    pose: HeadPose
    sharpness: float
    brightness: float
    contrast: float
    blockiness: float | None
    confidence: float


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """`score` (0..1) estimates the share of the face's identity its embedding keeps: the cosine an
    embedding of it would have with one of a clean capture of the same face. `reasons` are the
    codes that kept it from a higher level, worst first (empty when high)."""

    level: QualityLevel
    score: float
    reasons: tuple[QualityReason, ...]
    measures: QualityMeasures


@dataclass(frozen=True, slots=True)
class Curve:
    """A measure's value to the share of identity kept (0..1), linear between measured points and flat
    beyond the ends. `points` are (value, kept) in increasing value."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        values = [value for value, _ in self.points]
        if not self.points or values != sorted(values) or not all(0.0 <= kept <= 1.0 for _, kept in self.points):
            raise ValueError("a curve needs points in increasing value with shares between 0 and 1")

    def __call__(self, value: float) -> float:
        values = [point[0] for point in self.points]
        right = bisect.bisect_right(values, value)
        if right == 0:
            return self.points[0][1]
        if right == len(values):
            return self.points[-1][1]
        (x0, y0), (x1, y1) = self.points[right - 1], self.points[right]
        return y0 + (y1 - y0) * (value - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True)
class QualityRules:
    """The thresholds `assess` applies (docs/quality.md says where each comes from)."""

    sharpness: Curve
    face_size: Curve
    blockiness: Curve
    contrast: Curve  # low contrast from haze or from darkness: the reason says which
    over_exposure: Curve  # on brightness: bright faces lose detail to clipping
    high: float  # score at or above: high
    medium: float  # score at or above: medium; below: low
    dark_below: float  # a low-contrast face darker than this is LOW_BRIGHTNESS, else LOW_CONTRAST
    min_confidence: float  # below: LOW_CONFIDENCE, and the face is low
    max_yaw: float  # beyond (either way): EXTREME_POSE, and the face is low
    max_pitch_down: float
    max_pitch_up: float


def assess(measures: QualityMeasures, rules: QualityRules) -> FaceQuality:
    """The face's level, score and reasons.

    The score is the product of what each measure keeps (sharpness, face size, compression and
    exposure each lose identity on their own). The level follows the score, except that a face
    past the pose limits or under the confidence floor is low whatever its pixels: the score does not
    see those (docs/quality.md). A measure that alone would keep the score under `high` is a reason.
    """
    kept = _kept(measures, rules)
    score = 1.0
    for share in kept.values():
        score *= share
    gates = _gates(measures, rules)
    if gates or score < rules.medium:
        level = QualityLevel.LOW
    else:
        level = QualityLevel.HIGH if score >= rules.high else QualityLevel.MEDIUM
    below = sorted((share, reason) for reason, share in kept.items() if share < rules.high)
    if level is not QualityLevel.HIGH and not below and not gates:
        # several measures each a little short: name those that cost anything
        below = sorted((share, reason) for reason, share in kept.items() if share < 1.0)
    reasons = tuple(gates) + tuple(reason for _, reason in below)
    return FaceQuality(level, round(min(1.0, max(0.0, score)), 4), reasons, measures)


def _kept(measures: QualityMeasures, rules: QualityRules) -> dict[QualityReason, float]:
    exposure = QualityReason.LOW_BRIGHTNESS if measures.brightness < rules.dark_below else QualityReason.LOW_CONTRAST
    kept = {
        QualityReason.LOW_SHARPNESS: rules.sharpness(measures.sharpness),
        QualityReason.SMALL_BOUNDING_BOX: rules.face_size(measures.face_size),
        exposure: rules.contrast(measures.contrast),
        QualityReason.HIGH_BRIGHTNESS: rules.over_exposure(measures.brightness),
    }
    if measures.blockiness is not None:
        kept[QualityReason.COMPRESSION_ARTIFACTS] = rules.blockiness(measures.blockiness)
    return kept


def _gates(measures: QualityMeasures, rules: QualityRules) -> list[QualityReason]:
    pose = measures.pose
    gates = []
    if abs(pose.yaw) > rules.max_yaw or pose.pitch < -rules.max_pitch_down or pose.pitch > rules.max_pitch_up:
        gates.append(QualityReason.EXTREME_POSE)
    if measures.confidence < rules.min_confidence:
        gates.append(QualityReason.LOW_CONFIDENCE)
    return gates


# Calibrated by `uv run python -m bench.quality` (docs/quality.md): each curve is the median cosine
# a face kept to its clean embedding when the measure had that value, 1 where it kept at least 0.95.
DEFAULT_RULES = QualityRules(
    sharpness=Curve(((0.12, 0.23), (0.15, 0.48), (0.2, 0.65), (0.28, 0.8), (0.44, 0.92), (0.72, 1.0))),
    face_size=Curve(((16.0, 0.5), (24.0, 0.81), (28.0, 0.88), (40.0, 0.93), (48.0, 1.0))),
    blockiness=Curve(((1.22, 1.0), (1.31, 0.92), (1.56, 0.84), (1.71, 0.77), (2.0, 0.65), (3.06, 0.4))),
    contrast=Curve(((0.006, 0.6), (0.01, 0.78), (0.015, 0.85), (0.022, 0.9), (0.031, 0.93), (0.056, 1.0))),
    over_exposure=Curve(((0.63, 1.0), (0.79, 0.94), (0.88, 0.88), (0.94, 0.8), (0.97, 0.65), (0.99, 0.41))),
    high=0.74,
    medium=0.63,
    dark_below=0.3,
    min_confidence=0.72,
    max_yaw=45.0,
    max_pitch_down=30.0,
    max_pitch_up=45.0,
)
