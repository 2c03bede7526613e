"""Which faces of a photo are indexed (domain.use_cases.photos.photo_plan), and the photo search's
opaque cursor (adapters.wire.photos): pure rules."""

from __future__ import annotations

import base64

import pytest

from adapters.wire.photos import decode_cursor, encode_cursor
from domain.errors import InvalidInput
from domain.gallery import PhotoCursor
from domain.model import BoundingBox, DetectedFace
from domain.quality import FaceQuality, HeadPose, QualityLevel, QualityMeasures, QualityReason
from domain.use_cases.photos import PhotoOptions, chosen_faces, photo_plan

MEASURES = QualityMeasures(100.0, 40.0, HeadPose(0.0, 0.0, 0.0), 0.8, 0.5, 0.12, 1.0, 0.9)
POINTS = ((1.0, 1.0), (2.0, 1.0), (1.5, 1.5), (1.0, 2.0), (2.0, 2.0))


def face(side: float, level: QualityLevel | None, *reasons: QualityReason) -> DetectedFace:
    quality = None if level is None else FaceQuality(level, 0.5, reasons, MEASURES)
    return DetectedFace(BoundingBox(0, 0, side, side * 1.2), 0.9, POINTS, quality)


def test_small_poor_and_surplus_faces_are_unindexed_with_their_reasons() -> None:
    faces = [
        face(200, QualityLevel.HIGH),
        face(150, QualityLevel.LOW, QualityReason.LOW_SHARPNESS, QualityReason.EXTREME_POSE),
        face(120, QualityLevel.MEDIUM),
        face(100, QualityLevel.HIGH),
        face(20, QualityLevel.HIGH),
        face(90, None),  # never assessed: only `none` lets it through
    ]
    plan = photo_plan(faces, PhotoOptions(QualityLevel.MEDIUM, max_faces=2, min_face_size=40))
    assert plan == [
        (),
        ("LOW_QUALITY", "LOW_SHARPNESS", "EXTREME_POSE"),
        (),
        ("EXCEEDS_MAX_FACES",),  # the two largest that pass are indexed
        ("SMALL_BOUNDING_BOX",),
        ("LOW_QUALITY",),
    ]
    assert chosen_faces(PhotoOptions(None, max_faces=100))(faces) == [0, 1, 2, 3, 4, 5]
    assert chosen_faces(PhotoOptions(QualityLevel.HIGH, max_faces=1))(faces) == [0]


@pytest.mark.parametrize("options", [{"max_faces": 0}, {"max_faces": 101}, {"min_face_size": -1}])
def test_options_out_of_range_are_refused(options: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        PhotoOptions(**options)  # type: ignore[arg-type]


def test_the_cursor_round_trips_exactly_and_anything_else_is_invalid_cursor() -> None:
    cursor = PhotoCursor(0.6312740123456789, "img:2026:0042.jpg")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor(None) is None
    assert decode_cursor("") is None  # `after=`: the first page, as the lists read it
    forged = [
        "%%%",
        base64.urlsafe_b64encode(b'[1e400, "a"]').decode(),
        base64.urlsafe_b64encode(b'[0.5, "a/b"]').decode(),
        base64.urlsafe_b64encode(b'[0.5, ".."]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "A" * 401,
    ]
    for text in forged:
        with pytest.raises(InvalidInput) as raised:
            decode_cursor(text)
        assert raised.value.code == "invalid_cursor", text
