"""The HTTP contract on the fake backend: every endpoint, both input forms, auth and error paths."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from litestar.testing import TestClient

from tests.support.photos import GROUP_PHOTO, SELFIE, b64
from tests.support.services import API_KEY, AUTH, encode_png

IMAGE_ENDPOINTS = ["/verify-face", "/extract-embedding"]
FLAT = encode_png(np.full((120, 160, 3), 30, dtype=np.uint8))
Client = TestClient  # type: ignore[type-arg]


def unit(seed: int, dimension: int = 512) -> list[float]:
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return list(vector / np.linalg.norm(vector))


# --- health -------------------------------------------------------------------------------------


def test_health_without_a_key_says_only_its_status(client: Client) -> None:
    """Probes need no key and learn nothing else: no model, no version, no store, no collections."""
    client.post("/collections", headers=AUTH, json={"name": "private-gallery"})
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": "Basic abc"}):
        response = client.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"status": "healthy"}, headers
        assert "private-gallery" not in response.text


def test_health_with_a_key_describes_the_model(client: Client) -> None:
    response = client.get("/health", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["backend"] == "fake"
    assert body["model_id"] == "fake:00000000"
    assert body["embedding_size"] == 512
    assert body["version"] == "1.0.0"


# --- the two input forms -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_multipart_and_base64_give_the_same_answer(client: Client, endpoint: str) -> None:
    multipart = client.post(endpoint, headers=AUTH, files={"file": ("face.jpg", SELFIE.read_bytes(), "image/jpeg")})
    as_json = client.post(endpoint, headers=AUTH, json={"image_base64": b64(SELFIE)})
    assert multipart.status_code == as_json.status_code == 200
    assert multipart.json() == as_json.json()


def test_verify_face_reports_the_primary_face(client: Client) -> None:
    body = client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)}).json()
    assert body["face_detected"] is True
    assert body["message"] == "Face detected successfully"
    assert body["faces_count"] == 1
    x1, y1, x2, y2 = body["bbox"]
    assert 0 <= x1 < x2 <= 233 and 0 <= y1 < y2 <= 287  # yaoming.jpg is 233x287
    assert 0 < body["confidence"] <= 1
    assert "faces" not in body and "embedding" not in body


def test_extract_embedding_returns_a_unit_vector_and_its_model(client: Client) -> None:
    body = client.post("/extract-embedding", headers=AUTH, json={"image_base64": b64(SELFIE)}).json()
    assert body["face_detected"] is True
    assert len(body["embedding"]) == 512
    assert np.linalg.norm(body["embedding"]) == pytest.approx(1.0, abs=1e-4)
    assert body["model"] == "fake:00000000"
    assert len(body["bbox"]) == 4


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_no_face_is_a_result_not_an_error(client: Client, endpoint: str) -> None:
    response = client.post(endpoint, headers=AUTH, files={"file": ("flat.png", FLAT, "image/png")})
    assert response.status_code == 200
    assert response.json() == {"face_detected": False, "faces_count": 0, "error": "No face detected in image"}


@pytest.mark.parametrize("endpoint", IMAGE_ENDPOINTS)
def test_all_faces_lists_every_face(client: Client, endpoint: str) -> None:
    body = client.post(f"{endpoint}?all_faces=true", headers=AUTH, json={"image_base64": b64(GROUP_PHOTO)}).json()
    assert len(body["faces"]) == body["faces_count"]
    first = body["faces"][0]
    assert first["bbox"] == body["bbox"]
    assert len(first["landmarks"]) == 5
    assert ("embedding" in first) == (endpoint == "/extract-embedding")


def test_base64_may_be_a_data_url_with_line_breaks(client: Client) -> None:
    raw = base64.encodebytes(SELFIE.read_bytes()).decode()  # MIME style, a newline every 76 characters
    response = client.post("/extract-embedding", headers=AUTH, json={"image_base64": "data:image/jpeg;base64," + raw})
    assert response.status_code == 200
    assert response.json()["face_detected"] is True


# --- batch ---------------------------------------------------------------------------------------


def test_batch_one_bad_item_never_fails_the_others(client: Client) -> None:
    images = [b64(SELFIE), "###not base64###", base64.b64encode(b"GIF89a...").decode(), base64.b64encode(FLAT).decode()]
    response = client.post("/batch-extract", headers=AUTH, json={"images": images})
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["successful"], body["failed"]) == (4, 1, 3)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["face_detected"] is True and len(results[0]["embedding"]) == 512
    assert results[1]["code"] == "invalid_base64"
    assert results[2]["code"] == "unsupported_image_format"
    assert results[3] == {
        "index": 3,
        "face_detected": False,
        "faces_count": 0,
        "error": "No face detected in image",
        "code": "no_face",
    }


def test_batch_accepts_several_multipart_files(client: Client) -> None:
    files = [
        ("file", ("a.jpg", SELFIE.read_bytes(), "image/jpeg")),
        ("file", ("b.jpg", GROUP_PHOTO.read_bytes(), "image/jpeg")),
    ]
    body = client.post("/batch-extract", headers=AUTH, files=files).json()
    assert body["total"] == 2 and body["successful"] == 2
    assert body["results"][0]["embedding"] != body["results"][1]["embedding"]


def test_batch_matches_single_extraction(client: Client) -> None:
    single = client.post("/extract-embedding", headers=AUTH, json={"image_base64": b64(SELFIE)}).json()
    batch = client.post("/batch-extract", headers=AUTH, json={"images": [b64(SELFIE)]}).json()
    assert batch["results"][0]["embedding"] == single["embedding"]


def test_batch_limits(client: Client) -> None:
    empty = client.post("/batch-extract", headers=AUTH, json={"images": []})
    assert (empty.status_code, empty.json()["code"]) == (400, "empty_batch")
    too_many = client.post("/batch-extract", headers=AUTH, json={"images": [b64(SELFIE)] * 33})
    assert (too_many.status_code, too_many.json()["code"]) == (413, "batch_too_large")


# --- compare -------------------------------------------------------------------------------------


def test_compare_one_to_one(client: Client) -> None:
    a, b = unit(1), unit(2)
    body = client.post("/compare-faces", headers=AUTH, json={"embedding_a": a, "embedding_b": b}).json()
    expected = float(np.dot(a, b))
    assert body["similarity"] == pytest.approx(expected, abs=1e-5)
    assert body["distance"] == pytest.approx(1 - expected, abs=1e-5)
    assert body["match"] is False
    assert body["threshold"] == 0.4
    same = client.post("/compare-faces", headers=AUTH, json={"embedding_a": a, "embedding_b": a}).json()
    assert same["similarity"] == pytest.approx(1.0, abs=1e-5) and same["match"] is True


def test_compare_normalises_unnormalised_vectors(client: Client) -> None:
    a = unit(3)
    body = client.post(
        "/compare-faces", headers=AUTH, json={"embedding_a": a, "embedding_b": [v * 7 for v in a]}
    ).json()
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_compare_one_to_many(client: Client) -> None:
    probe = unit(4)
    candidates = [unit(5), probe, unit(6)]
    body = client.post("/compare-faces", headers=AUTH, json={"embedding_a": probe, "candidates": candidates}).json()
    assert body["best_index"] == 1
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["match"] for r in body["results"]] == [False, True, False]


def test_compare_refuses_embeddings_from_different_models(client: Client) -> None:
    payload = {
        "embedding_a": unit(1),
        "embedding_b": unit(2),
        "model_a": "buffalo_s:aaaa1111",
        "model_b": "buffalo_l:bbbb2222",
    }
    response = client.post("/compare-faces", headers=AUTH, json=payload)
    assert (response.status_code, response.json()["code"]) == (422, "model_mismatch")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"embedding_a": [0.1] * 511, "embedding_b": [0.1] * 512}, "embedding_a"),
        ({"embedding_a": [0.1] * 512, "embedding_b": [0.1] * 513}, "embedding_b"),
        ({"embedding_a": [0.0] * 512, "embedding_b": [0.1] * 512}, "embedding_a"),
        (
            '{"embedding_a": [1e999' + ", 0.1" * 511 + '], "embedding_b": [' + ", ".join(["0.1"] * 512) + "]}",
            "embedding_a",
        ),
        ({"embedding_a": [0.1] * 512, "candidates": [[0.1] * 512, [0.0] * 512]}, "candidates[1]"),
        ({"embedding_a": ["nan"] + [0.1] * 511, "embedding_b": [0.1] * 512}, "embedding_a[0]"),
        ({"embedding_a": [0.1] * 512, "embedding_b": [0.1] * 511 + ["inf"]}, "embedding_b[511]"),
    ],
)
def test_compare_rejects_unusable_embeddings(client: Client, payload: dict[str, object] | str, field: str) -> None:
    if isinstance(payload, str):  # JSON that Python's encoder refuses to write: 1e999 reads as infinity
        response = client.post("/compare-faces", headers={**AUTH, "Content-Type": "application/json"}, content=payload)
    else:
        response = client.post("/compare-faces", headers=AUTH, json=payload)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_embedding"
    assert response.json()["field"].startswith(field)


def test_compare_needs_exactly_one_of_embedding_b_and_candidates(client: Client) -> None:
    for payload in (
        {"embedding_a": unit(1)},
        {"embedding_a": unit(1), "embedding_b": unit(2), "candidates": [unit(3)]},
    ):
        response = client.post("/compare-faces", headers=AUTH, json=payload)
        assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-000000"},
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize("endpoint", ["/verify-face", "/extract-embedding", "/batch-extract", "/compare-faces"])
def test_every_face_endpoint_needs_the_api_key(client: Client, endpoint: str, headers: dict[str, str]) -> None:
    response = client.post(endpoint, headers=headers, json={"image_base64": b64(SELFIE)})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"json": {"image": "x"}}, 400, "invalid_request"),
        ({"json": {"image_base64": 42}}, 400, "invalid_request"),
        ({"json": {"image_base64": "@@@@"}}, 400, "invalid_base64"),
        ({"json": {"image_base64": base64.b64encode(b"hello world").decode()}}, 415, "unsupported_image_format"),
        ({"json": {"image_base64": base64.b64encode(SELFIE.read_bytes()[:300]).decode()}}, 422, "invalid_image"),
        ({"content": SELFIE.read_bytes(), "headers": {"Content-Type": "image/jpeg"}}, 415, "unsupported_media_type"),
        ({"files": {"image": ("a.jpg", SELFIE.read_bytes(), "image/jpeg")}}, 400, "missing_image"),
        ({"files": {"file": ("a.txt", b"just text", "image/jpeg")}}, 415, "unsupported_image_format"),
    ],
)
def test_bad_input_gets_a_clear_json_error(client: Client, kwargs: dict[str, object], status: int, code: str) -> None:
    headers = {**AUTH, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post("/extract-embedding", headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert client.get("/health").status_code == 200  # and the service still serves


def test_unknown_routes_and_methods_answer_in_the_same_shape(client: Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong_method = client.get("/extract-embedding", headers=AUTH)
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")


def test_invalid_query_parameter_is_a_400(client: Client) -> None:
    response = client.post("/verify-face?all_faces=maybe", headers=AUTH, json={"image_base64": b64(SELFIE)})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


# --- unexpected failures ---------------------------------------------------------------------------


class ExplodingDetector:
    """A detector whose runtime fails once `broken` is set, as a GPU that falls over would."""

    name = "exploding"
    providers = ()
    broken = False

    def detect(self, image: object) -> list[object]:
        if self.broken:
            raise RuntimeError("/opt/secret/path/model.onnx: CUDA failure 999")
        return []


def test_an_unexpected_failure_is_a_generic_500_with_a_request_id(caplog: pytest.LogCaptureFixture) -> None:
    from dependency_injector import providers

    from app.bootstrap import bootstrap
    from tests.support.services import make_client, settings_for

    settings = settings_for("fake")
    container = bootstrap(settings)
    detector = ExplodingDetector()
    with container.detector.override(providers.Object(detector)), make_client(settings, container) as broken:
        detector.broken = True
        response = broken.post(
            "/extract-embedding", headers={**AUTH, "X-Request-ID": "req-123"}, json={"image_base64": b64(SELFIE)}
        )
        assert response.status_code == 500
        assert response.json() == {"error": "Internal server error", "code": "internal_error", "request_id": "req-123"}
        assert "secret" not in response.text and "CUDA" not in response.text
        assert "req-123" in caplog.text and "CUDA failure" in caplog.text  # the operator sees it in the log
        assert broken.get("/health").status_code == 200


def test_a_model_that_fails_its_warm_up_stops_start_up() -> None:
    from dependency_injector import providers

    from app.bootstrap import bootstrap
    from tests.support.services import make_client, settings_for

    settings = settings_for("fake")
    container = bootstrap(settings)
    detector = ExplodingDetector()
    detector.broken = True
    with (
        container.detector.override(providers.Object(detector)),
        pytest.raises(Exception) as failure,
        make_client(settings, container),
    ):
        pass
    assert "CUDA failure" in repr(failure.value)  # the test client wraps it in an ExceptionGroup
