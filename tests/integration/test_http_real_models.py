"""The HTTP API on the real models: what a Next.js caller sees."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import TestClient

from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, b64
from tests.support.services import AUTH

pytestmark = pytest.mark.real_model
Client = TestClient  # type: ignore[type-arg]


def test_health_reports_the_embedded_pack_and_providers(real_client: Client) -> None:
    body = real_client.get("/health", headers=AUTH).json()
    assert body["model"] == "insightface"
    assert body["model_pack"] == "buffalo_s"
    assert body["model_id"].startswith("buffalo_s:")
    assert body["embedding_size"] == 512
    assert body["execution_providers"] == ["CPUExecutionProvider"]


def test_group_photo_over_http(real_client: Client) -> None:
    body = real_client.post(
        "/verify-face?all_faces=true", headers=AUTH, files={"file": ("t1.jpg", GROUP_PHOTO.read_bytes(), "image/jpeg")}
    ).json()
    assert body["face_detected"] is True
    assert body["faces_count"] == 6 == len(body["faces"])
    for face in body["faces"]:
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 886


def test_extract_then_compare_the_same_person(real_client: Client) -> None:
    selfie = real_client.post("/extract-embedding", headers=AUTH, json={"image_base64": b64(SELFIE)}).json()
    team = real_client.post(
        "/extract-embedding?all_faces=true", headers=AUTH, json={"image_base64": b64(TEAM_PHOTO)}
    ).json()
    candidates = [face["embedding"] for face in team["faces"]]
    body = real_client.post(
        "/compare-faces",
        headers=AUTH,
        json={
            "embedding_a": selfie["embedding"],
            "candidates": candidates,
            "model_a": selfie["model"],
            "model_b": team["model"],
        },
    ).json()
    best = team["faces"][body["best_index"]]
    x1, y1, x2, y2 = best["bbox"]
    assert x1 < 740 < x2 and y1 < 180 < y2  # Yao Ming, #13 in the top row
    assert body["match"] is True
    assert sum(result["match"] for result in body["results"]) == 1
    assert body["model"] == selfie["model"]


def test_batch_on_real_models_equals_single_calls(real_client: Client) -> None:
    batch = real_client.post("/batch-extract", headers=AUTH, json={"images": [b64(SELFIE), b64(GROUP_PHOTO)]}).json()
    assert batch["successful"] == 2
    for index, path in enumerate((SELFIE, GROUP_PHOTO)):
        single = real_client.post("/extract-embedding", headers=AUTH, json={"image_base64": b64(path)}).json()
        assert np.dot(batch["results"][index]["embedding"], single["embedding"]) == pytest.approx(1.0, abs=1e-4)
        assert batch["results"][index]["bbox"] == single["bbox"]
