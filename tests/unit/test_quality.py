"""The quality rules (domain/quality.py): measures in, level, score and reasons out. Pure: no pixels."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from adapters.http.collections import QualityFloor
from adapters.wire.schemas import QualityLevelName, QualityReasonCode
from domain.quality import (
    DEFAULT_RULES,
    FLOOR_NAMES,
    Curve,
    HeadPose,
    QualityLevel,
    QualityMeasures,
    QualityReason,
    QualityRules,
    assess,
    quality_floor,
)

FULL = Curve(((0.0, 1.0),))
# Small, readable rules: sharpness under 0.5 and faces under 40 pixels lose identity linearly.
RULES = QualityRules(
    sharpness=Curve(((0.1, 0.0), (0.5, 1.0))),
    face_size=Curve(((20.0, 0.5), (40.0, 1.0))),
    blockiness=Curve(((1.2, 1.0), (3.0, 0.4))),
    contrast=Curve(((0.01, 0.5), (0.05, 1.0))),
    dark_contrast=Curve(((0.01, 0.65), (0.05, 1.0))),
    over_exposure=Curve(((0.8, 1.0), (1.0, 0.4))),
    high=0.75,
    medium=0.6,
    dark_below=0.2,
    min_confidence=0.7,
    max_yaw=45.0,
    max_pitch_down=30.0,
    max_pitch_up=45.0,
)
GOOD = QualityMeasures(
    face_size=100.0,
    eye_distance=40.0,
    pose=HeadPose(5.0, -3.0, 2.0),
    sharpness=0.8,
    brightness=0.5,
    contrast=0.12,
    blockiness=1.05,
    confidence=0.85,
)


def measured(**changes: object) -> QualityMeasures:
    return dataclasses.replace(GOOD, **changes)  # type: ignore[arg-type]


def test_a_curve_is_linear_between_its_points_and_flat_beyond() -> None:
    curve = Curve(((10.0, 0.2), (20.0, 0.6), (40.0, 1.0)))
    assert curve(15.0) == pytest.approx(0.4)
    assert curve(30.0) == pytest.approx(0.8)
    assert curve(0.0) == 0.2 and curve(100.0) == 1.0
    assert Curve(((1.0, 1.0), (2.0, 0.5)))(1.5) == pytest.approx(0.75)  # a falling one too


def test_a_curve_refuses_unordered_points_or_shares_outside_0_to_1() -> None:
    with pytest.raises(ValueError):
        Curve(((2.0, 0.5), (1.0, 1.0)))
    with pytest.raises(ValueError):
        Curve(((1.0, 1.5),))
    with pytest.raises(ValueError):
        Curve(())


def test_a_face_good_on_every_measure_is_high_with_no_reason() -> None:
    quality = assess(GOOD, RULES)
    assert quality.level is QualityLevel.HIGH
    assert quality.score == 1.0
    assert quality.reasons == ()
    assert quality.measures is GOOD


def test_the_score_is_the_product_of_what_each_measure_keeps() -> None:
    quality = assess(measured(sharpness=0.4, face_size=30.0), RULES)  # 0.75 and 0.75
    assert quality.score == 0.56  # to two places


@pytest.mark.parametrize(
    ("changes", "level", "reason"),
    [
        ({"sharpness": 0.36}, QualityLevel.MEDIUM, QualityReason.LOW_SHARPNESS),  # keeps 0.65
        ({"sharpness": 0.2}, QualityLevel.LOW, QualityReason.LOW_SHARPNESS),  # 0.25
        ({"face_size": 22.0}, QualityLevel.LOW, QualityReason.SMALL_BOUNDING_BOX),  # 0.55
        ({"blockiness": 2.0}, QualityLevel.MEDIUM, QualityReason.COMPRESSION_ARTIFACTS),  # 0.73
        ({"contrast": 0.015}, QualityLevel.LOW, QualityReason.LOW_CONTRAST),  # 0.56
        ({"brightness": 0.9}, QualityLevel.MEDIUM, QualityReason.HIGH_BRIGHTNESS),  # 0.7
    ],
)
def test_a_measure_that_alone_keeps_a_face_from_high_is_its_reason(
    changes: dict[str, float], level: QualityLevel, reason: QualityReason
) -> None:
    quality = assess(measured(**changes), RULES)
    assert quality.level is level
    assert quality.reasons == (reason,)


def test_reasons_come_worst_first() -> None:
    quality = assess(measured(sharpness=0.3, face_size=22.0), RULES)  # keeps 0.5 and 0.55
    assert quality.level is QualityLevel.LOW
    assert quality.reasons == (QualityReason.LOW_SHARPNESS, QualityReason.SMALL_BOUNDING_BOX)


def test_several_small_losses_name_the_largest_when_none_alone_keeps_the_face_from_high() -> None:
    quality = assess(measured(sharpness=0.42, face_size=34.0), RULES)  # keeps 0.8 and 0.85: 0.68
    assert quality.level is QualityLevel.MEDIUM
    assert quality.reasons == (QualityReason.LOW_SHARPNESS,)


def test_a_dark_face_is_judged_on_the_darkness_curve_and_called_dark() -> None:
    dark = assess(measured(brightness=0.1, contrast=0.02), RULES)  # dark_contrast keeps 0.74
    hazy = assess(measured(brightness=0.5, contrast=0.02), RULES)  # contrast keeps 0.625
    assert dark.score == 0.74
    assert dark.reasons == (QualityReason.LOW_BRIGHTNESS,)
    assert hazy.score == 0.62
    assert hazy.reasons == (QualityReason.LOW_CONTRAST,)


@pytest.mark.parametrize(
    "pose", [HeadPose(50.0, 0.0, 0.0), HeadPose(-46.0, 0.0, 0.0), HeadPose(0.0, -31.0, 0.0), HeadPose(0.0, 46.0, 0.0)]
)
def test_a_face_past_the_pose_limits_is_low_whatever_its_pixels(pose: HeadPose) -> None:
    quality = assess(measured(pose=pose), RULES)
    assert quality.level is QualityLevel.LOW
    assert quality.reasons == (QualityReason.EXTREME_POSE,)
    assert quality.score == 1.0  # the score is about the pixels; the level says the pose


@pytest.mark.parametrize("pose", [HeadPose(44.0, 0.0, 0.0), HeadPose(0.0, -29.0, 0.0), HeadPose(0.0, 44.0, 90.0)])
def test_within_the_pose_limits_and_at_any_roll_a_face_stays_high(pose: HeadPose) -> None:
    assert assess(measured(pose=pose), RULES).level is QualityLevel.HIGH


def test_a_doubtful_detection_is_low() -> None:
    quality = assess(measured(confidence=0.6, sharpness=0.3), RULES)
    assert quality.level is QualityLevel.LOW
    assert quality.reasons == (QualityReason.LOW_CONFIDENCE, QualityReason.LOW_SHARPNESS)


def test_an_unmeasured_blockiness_costs_nothing() -> None:
    assert assess(measured(blockiness=None), RULES).score == 1.0


def test_levels_are_ordered() -> None:
    assert QualityLevel.HIGH.at_least(QualityLevel.MEDIUM)
    assert QualityLevel.MEDIUM.at_least(QualityLevel.MEDIUM)
    assert not QualityLevel.LOW.at_least(QualityLevel.MEDIUM)


def test_the_wire_spells_every_level_and_reason_of_the_domain() -> None:
    assert set(typing.get_args(QualityLevelName)) == {level.value for level in QualityLevel}
    assert set(typing.get_args(QualityReasonCode)) == {reason.value for reason in QualityReason}


def test_the_wire_spells_every_quality_floor() -> None:
    assert typing.get_args(QualityFloor) == FLOOR_NAMES


def test_a_floor_is_none_or_a_level() -> None:
    assert quality_floor("none") is None
    assert [quality_floor(name) for name in ("low", "medium", "high")] == list(QualityLevel)
    with pytest.raises(ValueError, match="one of none, low, medium, high"):
        quality_floor("auto")


def test_the_default_rules_keep_a_clean_face_high_and_rank_levels() -> None:
    assert 0 < DEFAULT_RULES.medium < DEFAULT_RULES.high < 1
    assert assess(GOOD, DEFAULT_RULES).level is QualityLevel.HIGH
    blurred = assess(measured(sharpness=0.1), DEFAULT_RULES)
    assert blurred.level is QualityLevel.LOW and blurred.reasons[0] is QualityReason.LOW_SHARPNESS
