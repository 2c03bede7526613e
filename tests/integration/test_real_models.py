"""Behaviour of the real InsightFace models (buffalo_s, embedded). These always run, in CI too."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from adapters.models.alignment import align_face
from adapters.models.insightface_backend import detector_input_size
from app.bootstrap import Container
from domain.model import Image
from domain.use_cases.faces import FaceService
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TIGHT_CROP, TRIO_PHOTO
from tests.support.services import encode_png

pytestmark = pytest.mark.real_model


def test_the_group_photo_holds_six_faces(real_service: FaceService) -> None:
    detection = real_service.detect(GROUP_PHOTO.read_bytes())
    assert len(detection.faces) == 6
    assert all(face.confidence > 0.6 for face in detection.faces)


def test_the_same_person_in_two_photos_scores_far_above_other_people(real_service: FaceService) -> None:
    yao = real_service.extract(SELFIE.read_bytes()).faces[0]
    team = real_service.extract(TEAM_PHOTO.read_bytes(), all_faces=True)
    assert team.faces_count >= 12
    # Yao Ming wears #13 in the top row, centre-right: the face whose box holds x=740, y=180.
    (yao_in_team,) = [
        f for f in team.faces if f.face.box.x1 < 740 < f.face.box.x2 and f.face.box.y1 < 180 < f.face.box.y2
    ]
    same = float(yao.embedding @ yao_in_team.embedding)
    others = [float(yao.embedding @ f.embedding) for f in team.faces if f is not yao_in_team]
    others += [float(yao.embedding @ f.embedding) for f in real_service.extract(TRIO_PHOTO.read_bytes(), True).faces]
    assert same > real_service.match_threshold
    assert max(others) < real_service.match_threshold
    assert same - max(others) > 0.25


def test_a_tight_face_crop_is_still_found(real_service: FaceService) -> None:
    """A 112x112 crop that the face fills: stretching it to 640x640 loses it."""
    extraction = real_service.extract(TIGHT_CROP.read_bytes())
    assert extraction.faces_count == 1
    box = extraction.faces[0].face.box
    assert box.x2 - box.x1 > 50  # the face covers most of the crop


def test_a_small_image_is_found_and_boxes_are_in_its_own_pixels(real_service: FaceService) -> None:
    pixels = cv2.imread(str(SELFIE))
    small = cv2.resize(pixels, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    full = real_service.detect(SELFIE.read_bytes()).faces[0].box
    half = real_service.detect(encode_png(small)).faces[0].box
    for full_value, half_value in zip(
        (full.x1, full.y1, full.x2, full.y2), (half.x1, half.y1, half.x2, half.y2), strict=True
    ):
        assert half_value == pytest.approx(full_value / 2, abs=6)


def test_exif_orientation_is_honoured(real_service: FaceService) -> None:
    """A phone photo stored sideways with an EXIF orientation tag is read upright."""
    upright = cv2.imread(str(SELFIE))
    sideways = cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE)
    ok, jpeg = cv2.imencode(".jpg", sideways, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    # Orientation 8 ("rotate 270 CW to view") undoes a 90-degree clockwise rotation.
    tagged = _with_exif_orientation(jpeg.tobytes(), 8)
    image = real_service.decode(tagged)
    assert (image.height, image.width) == upright.shape[:2]
    reference = real_service.extract(SELFIE.read_bytes()).faces[0].embedding
    assert float(real_service.extract(tagged).faces[0].embedding @ reference) > 0.9


def test_alignment_matches_insightface_norm_crop(real_service: FaceService) -> None:
    from insightface.utils import face_align

    pixels = cv2.imread(str(GROUP_PHOTO))
    for face in real_service.detect(GROUP_PHOTO.read_bytes()).faces:
        landmarks = np.asarray(face.landmarks, dtype=np.float32)
        ours = align_face(pixels, landmarks.astype(np.float64)).astype(np.int16)
        theirs = face_align.norm_crop(pixels, landmarks).astype(np.int16)
        assert np.abs(ours - theirs).mean() < 1.0


def test_the_106_landmarks_outline_each_detected_face(real_container: Container) -> None:
    landmarks = real_container.landmarks()
    detector = real_container.detector()
    image = Image(cv2.imread(str(GROUP_PHOTO)))
    faces = detector.detect(image)
    located = landmarks.locate(image, faces)
    assert len(located) == len(faces) == 6
    for face, points in zip(faces, located, strict=True):
        assert points.shape == (106, 2) and np.isfinite(points).all()
        low, high = points.min(axis=0), points.max(axis=0)
        box = face.box
        overlap = max(0.0, min(high[0], box.x2) - max(low[0], box.x1)) * max(
            0.0, min(high[1], box.y2) - max(low[1], box.y1)
        )
        union = (high - low).prod() + box.area - overlap
        assert overlap / union > 0.5  # the points outline the face the detector boxed
        for x, y in face.landmarks:  # and hold its eyes, nose and mouth corners
            assert low[0] < x < high[0] and low[1] < y < high[1]
    assert landmarks.locate(image, []) == []


def test_detector_input_is_sized_to_the_image() -> None:
    assert detector_input_size(112, 112, 640) == (128, 128)  # never stretched up to 640
    assert detector_input_size(1280, 886, 640) == (640, 448)  # scaled down, multiples of 32
    assert detector_input_size(4000, 3000, 640) == (640, 480)
    assert detector_input_size(10, 3000, 640) == (32, 640)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert a minimal EXIF APP1 segment carrying only an orientation tag after SOI."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"  # big-endian TIFF header, first IFD at offset 8
        + b"\x00\x01"  # one entry
        + b"\x01\x12\x00\x03\x00\x00\x00\x01"
        + orientation.to_bytes(2, "big")
        + b"\x00\x00"
        + b"\x00\x00\x00\x00"  # no next IFD
    )
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def test_fast_jpeg_decode_finds_the_same_faces_in_original_pixels() -> None:
    from app.bootstrap import bootstrap
    from tests.support.services import settings_for

    big = cv2.resize(cv2.imread(str(GROUP_PHOTO)), (4096, 2835), interpolation=cv2.INTER_CUBIC)
    ok, data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    exact = bootstrap(settings_for("insightface")).service().extract(data.tobytes(), all_faces=True)
    fast = bootstrap(settings_for("insightface", FAST_JPEG_DECODE="true")).service()
    quick = fast.extract(data.tobytes(), all_faces=True)
    assert (quick.width, quick.height) == (4096, 2835)
    assert quick.faces_count == exact.faces_count == 6
    for a in exact.faces:  # the same face, found in the reduced image, in the same original pixels
        b = min(quick.faces, key=lambda f: abs(f.face.box.x1 - a.face.box.x1) + abs(f.face.box.y1 - a.face.box.y1))
        assert abs(a.face.box.x1 - b.face.box.x1) < 12 and abs(a.face.box.y2 - b.face.box.y2) < 12
        assert float(a.embedding @ b.embedding) > 0.95
