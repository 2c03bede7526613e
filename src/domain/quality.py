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

NO_FLOOR = "none"
FLOOR_NAMES = (NO_FLOOR, *(level.value for level in QualityLevel))  # what a `quality` filter may ask


# Enrollment's quality floor unless the caller names one. Medium, as Rekognition's AUTO: in the bench's
# evidence (docs/quality.md, "Levels against what happened to the face") the one same-person pair still
# matched in 6 of 15 low copies, 8 of 9 medium ones and 95 of 95 high ones; high would also refuse faces
# that identify well (the level's threshold keeps a margin), low would let in faces that miss.
DEFAULT_ENROLL_QUALITY = QualityLevel.MEDIUM


def quality_floor(name: str) -> QualityLevel | None:
    """A filter's floor by name: `none` (no filter: even a face whose quality is unknown passes) or the
    lowest level let through (`low` lets every assessed face through)."""
    if name not in FLOOR_NAMES:
        raise ValueError(f"a quality floor is one of {', '.join(FLOOR_NAMES)}, not {name!r}")
    return None if name == NO_FLOOR else QualityLevel(name)


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
    contrast: Curve  # on contrast, for faces not darker than `dark_below`: haze, glare, flat light
    dark_contrast: Curve  # on contrast, for darker faces: darkness costs less than haze at equal contrast
    over_exposure: Curve  # on brightness: bright faces lose detail to clipping
    high: float  # score (two places) at or above: high
    medium: float  # score at or above: medium; below: low
    dark_below: float  # a face darker than this is judged on `dark_contrast` (LOW_BRIGHTNESS), else on `contrast`
    min_confidence: float  # below: LOW_CONFIDENCE, and the face is low
    max_yaw: float  # beyond (either way): EXTREME_POSE, and the face is low
    max_pitch_down: float
    max_pitch_up: float


def assess(measures: QualityMeasures, rules: QualityRules) -> FaceQuality:
    """The face's level, score and reasons.

    The score is the product of what each measure keeps (sharpness, face size, compression and
    exposure each lose identity on their own). The level follows the score, except that a face
    past the pose limits or under the confidence floor is low whatever its pixels: the score does not
    see those (docs/quality.md). A measure that alone would keep the score under `high` is a reason;
    a face below high for no such measure alone (several small losses) names the largest.
    """
    kept = _kept(measures, rules)
    product = 1.0
    for share in kept.values():
        product *= share
    score = round(min(1.0, max(0.0, product)), 2)  # reported to two places; the level is read off it
    gates = _gates(measures, rules)
    if gates or score < rules.medium:
        level = QualityLevel.LOW
    else:
        level = QualityLevel.HIGH if score >= rules.high else QualityLevel.MEDIUM
    losses = sorted((share, reason) for reason, share in kept.items() if share < 1.0)
    below = [(share, reason) for share, reason in losses if share < rules.high]
    if level is not QualityLevel.HIGH and not below and not gates:
        below = losses[:1]
    reasons = tuple(gates) + tuple(reason for _, reason in below)
    return FaceQuality(level, score, reasons, measures)


def _kept(measures: QualityMeasures, rules: QualityRules) -> dict[QualityReason, float]:
    dark = measures.brightness < rules.dark_below
    kept = {
        QualityReason.LOW_SHARPNESS: rules.sharpness(measures.sharpness),
        QualityReason.SMALL_BOUNDING_BOX: rules.face_size(measures.face_size),
        QualityReason.LOW_BRIGHTNESS if dark else QualityReason.LOW_CONTRAST: (
            rules.dark_contrast if dark else rules.contrast
        )(measures.contrast),
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


# Calibrated by `uv run python -m bench.quality` (docs/quality.md has the figures and the reasons):
# each curve is the median cosine faces kept to their clean embedding when the measure had that value
# (monotone; 1 where they kept at least 0.95; 0 where nothing of the face is left). `high` and
# `medium` come from MATCH_THRESHOLD and the bundled photos' same-person and nearest different-person
# similarities; the pose limits are Rekognition's recommended angles.
DEFAULT_RULES = QualityRules(
    sharpness=Curve(
        (
            (0.0, 0.0),
            (0.119, 0.229),
            (0.125, 0.285),
            (0.131, 0.349),
            (0.149, 0.48),
            (0.198, 0.652),
            (0.277, 0.797),
            (0.436, 0.92),
            (0.722, 1.0),
        )
    ),
    face_size=Curve(
        ((0.0, 0.0), (16.1, 0.659), (19.95, 0.816), (23.9, 0.881), (28.0, 0.915), (31.9, 0.948), (39.95, 1.0))
    ),
    blockiness=Curve(
        ((1.089, 1.0), (1.205, 0.924), (1.244, 0.893), (1.371, 0.843), (1.415, 0.767), (1.743, 0.652), (2.366, 0.405))
    ),
    contrast=Curve(
        ((0.0, 0.0), (0.01, 0.535), (0.015, 0.73), (0.022, 0.83), (0.031, 0.883), (0.044, 0.924), (0.062, 1.0))
    ),
    dark_contrast=Curve(
        (
            (0.0, 0.0),
            (0.006, 0.603),
            (0.01, 0.782),
            (0.015, 0.855),
            (0.022, 0.898),
            (0.031, 0.927),
            (0.044, 0.949),
            (0.056, 1.0),
        )
    ),
    over_exposure=Curve(
        (
            (0.633, 1.0),
            (0.786, 0.945),
            (0.882, 0.877),
            (0.938, 0.801),
            (0.968, 0.648),
            (0.981, 0.531),
            (0.991, 0.406),
            (1.0, 0.0),
        )
    ),
    high=0.74,
    medium=0.63,
    dark_below=0.221,
    min_confidence=0.723,
    max_yaw=45.0,
    max_pitch_down=30.0,
    max_pitch_up=45.0,
)
