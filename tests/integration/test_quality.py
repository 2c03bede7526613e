"""Face quality on the real models: every reason code, each triggered on a bundled photo by the
degradation that causes it (or by a face the photos already hold), with the same face clean as the
contrast; the routes agree; the head-pose measure behaves as a pose; its 3D points are insightface's."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import cv2
import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.quality.head_pose import MEAN_FACE_DEPTH
from bench.quality import blur, brighten, darken, downscale, haze, jpeg
from domain.model import BoundingBox, Image
from domain.quality import DEFAULT_RULES, FaceQuality, QualityLevel, QualityReason
from domain.use_cases.faces import FaceService
from tests.support.photos import GROUP_PHOTO, INSIGHTFACE_IMAGES, SELFIE, TEAM_PHOTO
from tests.support.services import AUTH, encode_png

pytestmark = pytest.mark.real_model

Degrade = Callable[[np.ndarray, float, BoundingBox], np.ndarray]


def selfie() -> tuple[np.ndarray, BoundingBox]:
    pixels = np.asarray(cv2.imread(str(SELFIE)), dtype=np.uint8)
    return pixels, BoundingBox(72, 72, 177, 214)  # its face, as detected (tests/http/test_http_api.py)


def primary_quality(service: FaceService, data: bytes) -> FaceQuality:
    faces = service.extract(data).faces
    assert faces, "the degraded face must still be found"
    quality = faces[0].face.quality
    assert quality is not None
    return quality


def test_the_clean_selfie_is_high(real_service: FaceService) -> None:
    quality = primary_quality(real_service, SELFIE.read_bytes())
    assert quality.level is QualityLevel.HIGH and quality.reasons == ()
    measures = quality.measures
    assert 95 < measures.face_size < 115 and 40 < measures.eye_distance < 55
    assert abs(measures.pose.yaw) < 10 and abs(measures.pose.roll) < 10
    assert measures.sharpness > 0.7 and measures.blockiness is not None and measures.blockiness < 1.1


@pytest.mark.parametrize(
    ("degrade", "amount", "level", "reason"),
    [
        (blur, 6.0, QualityLevel.LOW, QualityReason.LOW_SHARPNESS),  # Gaussian sigma, pixels
        (downscale, 14.0, QualityLevel.LOW, QualityReason.SMALL_BOUNDING_BOX),  # the face's box side, pixels
        # Times 0.05: the darkest the detector still finds this face at with confidence over the floor.
        (darken, 0.05, QualityLevel.MEDIUM, QualityReason.LOW_BRIGHTNESS),
        (brighten, 3.0, QualityLevel.LOW, QualityReason.HIGH_BRIGHTNESS),  # times 3, clipped to white
        (haze, 0.08, QualityLevel.LOW, QualityReason.LOW_CONTRAST),  # contrast around mid-grey times 0.08
    ],
)
def test_each_degradation_takes_the_face_from_high_for_its_own_reason(
    real_service: FaceService, degrade: Degrade, amount: float, level: QualityLevel, reason: QualityReason
) -> None:
    pixels, box = selfie()
    quality = primary_quality(real_service, encode_png(degrade(pixels, amount, box)))
    assert quality.level is level
    assert quality.reasons == (reason,)


def test_heavy_jpeg_compression_is_compression_artifacts(real_service: FaceService) -> None:
    pixels, box = selfie()
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 5])
    assert ok
    quality = primary_quality(real_service, data.tobytes())
    assert quality.level is QualityLevel.LOW
    assert quality.reasons == (QualityReason.COMPRESSION_ARTIFACTS,)
    assert quality.measures.blockiness is not None and quality.measures.blockiness > 2
    # The same pixels sent losslessly: blocks that another step put there are still seen.
    assert primary_quality(real_service, encode_png(jpeg(pixels, 5, box))).reasons == (
        QualityReason.COMPRESSION_ARTIFACTS,
    )


def test_the_score_falls_with_every_step_of_blur(real_service: FaceService) -> None:
    pixels, box = selfie()
    scores = [primary_quality(real_service, encode_png(blur(pixels, sigma, box))).score for sigma in (0, 2, 3, 4, 6)]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1] + 0.5


def test_a_face_turned_away_is_extreme_pose_and_the_others_are_not(real_service: FaceService) -> None:
    """t1.jpg's third face is turned about 55 degrees from the camera; the other five face it."""
    faces = real_service.detect(GROUP_PHOTO.read_bytes(), all_faces=True).faces
    qualities = [face.quality for face in faces]
    assert all(quality is not None for quality in qualities)
    turned = [q for q in qualities if q is not None and QualityReason.EXTREME_POSE in q.reasons]
    assert len(turned) == 1
    assert abs(turned[0].measures.pose.yaw) > DEFAULT_RULES.max_yaw and turned[0].level is QualityLevel.LOW
    others = [q for q in qualities if q is not None and q is not turned[0]]
    assert all(abs(q.measures.pose.yaw) < DEFAULT_RULES.max_yaw for q in others)


def test_doubtful_detections_are_low_confidence(real_service: FaceService) -> None:
    """players.jpg's smallest faces (13 to 22 pixels) are found with confidences from 0.5 to 0.63."""
    faces = real_service.detect(TEAM_PHOTO.read_bytes(), all_faces=True).faces
    doubtful = [f.quality for f in faces if f.quality is not None and f.confidence < DEFAULT_RULES.min_confidence]
    sure = [f.quality for f in faces if f.quality is not None and f.confidence >= DEFAULT_RULES.min_confidence]
    assert len(doubtful) >= 4 and sure
    assert all(q.reasons[0] is QualityReason.LOW_CONFIDENCE and q.level is QualityLevel.LOW for q in doubtful)
    assert not any(QualityReason.LOW_CONFIDENCE in q.reasons for q in sure)


def test_verify_face_and_extract_embedding_judge_a_face_alike(real_service: FaceService) -> None:
    data = GROUP_PHOTO.read_bytes()
    detected = [f.quality for f in real_service.detect(data, all_faces=True).faces]
    extracted = [f.face.quality for f in real_service.extract(data, all_faces=True).faces]
    assert detected == extracted


def test_a_mirrored_face_turns_the_other_way_and_a_rotated_one_rolls(real_service: FaceService) -> None:
    pixels = np.asarray(cv2.imread(str(GROUP_PHOTO)), dtype=np.uint8)
    original = [f.quality for f in real_service.detect(encode_png(pixels), all_faces=True).faces]
    mirrored = [f.quality for f in real_service.detect(encode_png(pixels[:, ::-1].copy()), all_faces=True).faces]
    turned = max((q for q in original if q is not None), key=lambda q: abs(q.measures.pose.yaw))
    mirror = max((q for q in mirrored if q is not None), key=lambda q: abs(q.measures.pose.yaw))
    assert turned.measures.pose.yaw * mirror.measures.pose.yaw < 0
    assert abs(turned.measures.pose.yaw + mirror.measures.pose.yaw) < 10
    face_pixels, box = selfie()
    centre = ((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2)
    clockwise = cv2.warpAffine(face_pixels, cv2.getRotationMatrix2D(centre, -20, 1.0), face_pixels.shape[1::-1])
    upright = primary_quality(real_service, encode_png(face_pixels)).measures.pose.roll
    rolled = primary_quality(real_service, encode_png(clockwise)).measures.pose.roll
    assert 14 < rolled - upright < 26


def test_the_head_pose_depths_are_insightfaces_mean_face() -> None:
    """head_pose.py's depths: insightface's meanshape_68 at the five points, scaled to ArcFace's eyes."""
    from adapters.models.alignment import ARCFACE_REFERENCE

    with (INSIGHTFACE_IMAGES.parent / "objects" / "meanshape_68.pkl").open("rb") as stream:
        mean = np.asarray(pickle.load(stream), dtype=np.float64)
    five = np.array([mean[36:42].mean(axis=0), mean[42:48].mean(axis=0), mean[30], mean[48], mean[54]])
    scale = (ARCFACE_REFERENCE[1, 0] - ARCFACE_REFERENCE[0, 0]) / (five[1, 0] - five[0, 0])
    depth = (five[:, 2] - five[:, 2].mean()) * scale
    assert np.allclose(MEAN_FACE_DEPTH, depth, atol=1e-3)


def test_a_quarter_size_decode_does_not_measure_blocks(real_service: FaceService) -> None:
    """FAST_JPEG_DECODE's quarter-size decoding leaves 2-pixel blocks: blockiness is not measured."""
    pixels, _ = selfie()
    image = Image(pixels[::4, ::4].copy(), source_size=(pixels.shape[1], pixels.shape[0]))
    quality = real_service.extract_image(image).faces[0].face.quality
    assert quality is not None and quality.measures.blockiness is None


def test_enrollment_refuses_a_blurred_real_face_at_medium_and_takes_it_at_none(real_client: TestClient) -> None:  # type: ignore[type-arg]
    pixels, box = selfie()
    blurred = encode_png(blur(pixels, 6.0, box))  # LOW_SHARPNESS, low (above)
    real_client.post("/collections", headers=AUTH, json={"name": "blurred-enrollment"})

    def enroll(query: str) -> httpx.Response:
        return real_client.post(
            f"/collections/blurred-enrollment/subjects/yao-ming/faces{query}",
            headers=AUTH,
            files={"file": ("blurred.png", blurred, "image/png")},
        )

    for refused in (enroll(""), enroll("?quality=medium")):  # medium is the default
        assert (refused.status_code, refused.json()["code"]) == (422, "low_quality_face")
        assert refused.json()["reasons"] == ["LOW_SHARPNESS"]
    assert real_client.get("/collections/blurred-enrollment", headers=AUTH).json()["faces"] == 0
    assert enroll("?quality=none").status_code == 201
    clean = real_client.post(
        "/collections/blurred-enrollment/subjects/yao-ming/faces?quality=high",
        headers=AUTH,
        files={"file": ("clean.jpg", SELFIE.read_bytes(), "image/jpeg")},
    )
    assert clean.status_code == 201
    searched = real_client.post(
        "/collections/blurred-enrollment/search?min_quality=medium",
        headers=AUTH,
        files={"file": ("blurred.png", blurred, "image/png")},
    ).json()
    assert searched["results"] == [] and searched["skipped"][0]["quality"]["reasons"] == ["LOW_SHARPNESS"]
    real_client.delete("/collections/blurred-enrollment", headers=AUTH)
