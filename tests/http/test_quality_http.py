"""Face quality on the wire, on the fake backend: where it appears, its shape, and the reasons the fake
backend can see (size, brightness, contrast); the OpenAPI document declares the levels and codes."""

from __future__ import annotations

import base64
import typing

import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.wire.schemas import QualityReasonCode
from app.bootstrap import openapi_document
from domain.quality import QualityLevel, QualityReason
from tests.support.photos import GROUP_PHOTO, SELFIE, b64
from tests.support.services import AUTH, encode_png

Client = TestClient  # type: ignore[type-arg]
MEASURES = {
    "face_size",
    "eye_distance",
    "yaw",
    "pitch",
    "roll",
    "sharpness",
    "brightness",
    "contrast",
    "blockiness",
    "confidence",
}


def noise(side: int, low: int = 0, high: int = 256) -> bytes:
    pixels = np.random.default_rng(side).integers(low, high, size=(side, side, 3), dtype=np.uint8)
    return encode_png(pixels)


def post_image(client: Client, route: str, data: bytes) -> dict[str, object]:
    response = client.post(route, headers=AUTH, files={"file": ("face.png", data, "image/png")})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def check_shape(quality: object) -> dict[str, object]:
    assert isinstance(quality, dict)
    assert set(quality) == {"level", "score", "reasons", "measures"}
    assert quality["level"] in {level.value for level in QualityLevel}
    assert isinstance(quality["score"], float) and 0.0 <= quality["score"] <= 1.0
    assert isinstance(quality["reasons"], list)
    assert {reason for reason in quality["reasons"]} <= {reason.value for reason in QualityReason}
    assert isinstance(quality["measures"], dict) and set(quality["measures"]) == MEASURES
    return quality


@pytest.mark.parametrize("route", ["/verify-face", "/extract-embedding"])
def test_the_primary_face_carries_its_quality(client: Client, route: str) -> None:
    body = post_image(client, route, SELFIE.read_bytes())
    quality = check_shape(body["quality"])
    assert quality["level"] == "high" and quality["reasons"] == []
    measures = quality["measures"]
    assert isinstance(measures, dict)
    assert measures["confidence"] == body["confidence"]
    x1, y1, x2, y2 = body["bbox"]  # type: ignore[misc]
    assert measures["face_size"] == pytest.approx(min(x2 - x1, y2 - y1), abs=1)


@pytest.mark.parametrize("route", ["/verify-face", "/extract-embedding"])
def test_with_all_faces_every_face_carries_its_own(client: Client, route: str) -> None:
    response = client.post(f"{route}?all_faces=true", headers=AUTH, json={"image_base64": b64(GROUP_PHOTO)})
    body = response.json()
    assert body["faces"]
    for face in body["faces"]:
        check_shape(face["quality"])
    assert body["faces"][0]["quality"] == body["quality"]


@pytest.mark.parametrize("route", ["/verify-face", "/extract-embedding"])
def test_no_face_no_quality(client: Client, route: str) -> None:
    body = post_image(client, route, encode_png(np.full((64, 64, 3), 128, np.uint8)))
    assert body["face_detected"] is False and "quality" not in body


def test_batch_items_carry_their_faces_quality_and_failures_none(client: Client) -> None:
    body = client.post("/batch-extract", headers=AUTH, json={"images": [b64(SELFIE), "not base64!"]}).json()
    good, bad = body["results"]
    check_shape(good["quality"])
    assert "quality" not in bad


def test_a_tiny_face_is_low_for_its_size(client: Client) -> None:
    """The fake's face is half the image across: 14 pixels here."""
    quality = check_shape(post_image(client, "/extract-embedding", noise(28))["quality"])
    assert quality["level"] == "low"
    assert quality["reasons"][0] == "SMALL_BOUNDING_BOX"  # type: ignore[index]


def test_a_dark_flat_face_is_low_for_its_brightness(client: Client) -> None:
    quality = check_shape(post_image(client, "/verify-face", noise(200, 0, 4))["quality"])
    assert quality["level"] != "high"
    assert quality["reasons"] == ["LOW_BRIGHTNESS"]


def test_a_washed_out_face_is_low_for_its_contrast(client: Client) -> None:
    quality = check_shape(post_image(client, "/verify-face", noise(200, 126, 130))["quality"])
    assert quality["level"] == "low"
    assert quality["reasons"] == ["LOW_CONTRAST"]


def test_the_openapi_document_declares_levels_and_reason_codes() -> None:
    schemas = openapi_document()["components"]["schemas"]  # type: ignore[index]
    quality = schemas["Quality"]
    assert set(quality["properties"]["level"]["enum"]) == {level.value for level in QualityLevel}
    assert set(quality["properties"]["reasons"]["items"]["enum"]) == {reason.value for reason in QualityReason}
    assert set(schemas["QualityMeasures"]["properties"]) == MEASURES
    for response in ("VerifyFaceResponse", "ExtractEmbeddingResponse", "BatchResult", "Face", "QueryFace"):
        assert "quality" in schemas[response]["properties"]
        assert "quality" not in schemas[response].get("required", [])  # an addition: optional
    assert schemas["ErrorResponse"]["properties"]["reasons"]["oneOf"][0]["items"]["enum"] == list(
        typing.get_args(QualityReasonCode)
    )


# Collections: enrollment's quality floor, search's min_quality


def enroll_image(client: Client, subject: str, data: bytes, query: str = "") -> dict[str, object]:
    response = client.post(
        f"/collections/staff/subjects/{subject}/faces{query}",
        headers=AUTH,
        files={"file": ("face.png", data, "image/png")},
    )
    body: dict[str, object] = response.json()
    body["status"] = response.status_code
    return body


def test_enrollment_refuses_a_low_quality_face_by_default_with_its_reasons(client: Client) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    dark = noise(200, 0, 4)  # the fake's face: dark and flat, LOW_BRIGHTNESS
    level = post_image(client, "/verify-face", dark)["quality"]["level"]  # type: ignore[index]
    assert level == "low"
    refused = enroll_image(client, "ann", dark)
    assert (refused["status"], refused["code"], refused["reasons"]) == (422, "low_quality_face", ["LOW_BRIGHTNESS"])
    assert "quality=medium" in refused["error"]  # type: ignore[operator]
    assert enroll_image(client, "ann", dark, "?quality=low")["status"] == 201
    assert client.get("/collections/staff", headers=AUTH).json()["faces"] == 1


@pytest.mark.parametrize(("floor", "status"), [("none", 201), ("low", 201), ("medium", 422), ("high", 422)])
def test_each_enrollment_floor_on_a_low_face(client: Client, floor: str, status: int) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    assert enroll_image(client, "ann", noise(28), f"?quality={floor}")["status"] == status  # SMALL_BOUNDING_BOX


def test_a_good_face_is_enrolled_at_high_and_a_bad_floor_is_a_400(client: Client) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    assert enroll_image(client, "ann", SELFIE.read_bytes(), "?quality=high")["status"] == 201
    bad = enroll_image(client, "bob", SELFIE.read_bytes(), "?quality=auto")
    assert bad["status"] == 400 and "reasons" not in bad


def test_an_embedding_is_enrolled_whatever_the_floor(client: Client) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    vector = post_image(client, "/extract-embedding", noise(200, 0, 4))["embedding"]  # of a low face
    enrolled = client.post(
        "/collections/staff/subjects/ann/faces?quality=high",
        headers=AUTH,
        json={"embedding": vector, "model": "fake:00000000"},
    )
    assert enrolled.status_code == 201  # the caller vouches for an embedding


def test_search_reports_each_face_quality_and_skips_those_under_min_quality(client: Client) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    dark = noise(200, 0, 4)
    assert enroll_image(client, "ann", dark, "?quality=none")["status"] == 201

    def search(query: str) -> dict[str, object]:
        response = client.post(
            f"/collections/staff/search{query}", headers=AUTH, json={"image_base64": b64_bytes(dark)}
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    every = search("")  # min_quality=none: unchanged, the low face is searched
    (result,) = every["results"]  # type: ignore[misc]
    assert result["decision"]["external_id"] == "ann" and every["skipped"] == []
    assert check_shape(result["face"]["quality"])["level"] == "low"
    filtered = search("?min_quality=medium")
    assert filtered["results"] == []
    (skipped,) = filtered["skipped"]  # type: ignore[misc]
    assert skipped["bbox"] == result["face"]["bbox"] and skipped["quality"] == result["face"]["quality"]
    assert search("?min_quality=low")["results"] == every["results"]


def test_search_by_embedding_has_no_face_to_skip(client: Client) -> None:
    client.post("/collections", headers=AUTH, json={"name": "staff"})
    vector = post_image(client, "/extract-embedding", noise(200, 0, 4))["embedding"]
    body = client.post(
        "/collections/staff/search?min_quality=high",
        headers=AUTH,
        json={"embedding": vector, "model": "fake:00000000"},
    ).json()
    assert len(body["results"]) == 1 and body["results"][0]["face"] is None and body["skipped"] == []


def b64_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()
