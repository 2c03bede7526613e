"""Metrics, request ids and structured logs."""

from __future__ import annotations

import json
import logging

import pytest

from app.logging_setup import JsonLines
from tests.support.photos import GROUP_PHOTO, SELFIE, b64
from tests.support.services import AUTH, make_client, settings_for


def test_every_response_carries_a_request_id() -> None:
    with make_client(settings_for("fake")) as client:
        given = client.post(
            "/verify-face", headers={**AUTH, "X-Request-ID": "abc-123"}, json={"image_base64": b64(SELFIE)}
        )
        made = client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)})
        hostile = client.post("/verify-face", headers={**AUTH, "X-Request-ID": "a\nb" * 3}, json={})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "a\nb" * 3  # unsafe ids are replaced, never echoed


def test_metrics_count_requests_stages_faces_and_the_model() -> None:
    with make_client(settings_for("fake")) as client:
        client.post("/extract-embedding?all_faces=true", headers=AUTH, json={"image_base64": b64(GROUP_PHOTO)})
        client.post("/extract-embedding", headers=AUTH, json={"image_base64": "@@"})
        assert client.get("/metrics").status_code == 401  # protected by default
        text = client.get("/metrics", headers=AUTH).text
    assert 'face_service_requests_total{method="POST",route="/extract-embedding",status="200"} 1.0' in text
    assert 'face_service_requests_total{method="POST",route="/extract-embedding",status="400"} 1.0' in text
    assert 'face_service_request_duration_seconds_count{method="POST",route="/extract-embedding"} 2.0' in text
    for stage in ("decode", "detect", "embed"):
        assert f'face_service_stage_duration_seconds_count{{stage="{stage}"}} 1.0' in text
    assert "face_service_faces_per_image_count 1.0" in text
    assert "face_service_queue_depth 0.0" in text
    assert (
        'face_service_model_info{backend="fake",execution_providers="none (fake backend)",model_id="fake:00000000"} 1.0'
        in text
    )


def test_metrics_can_be_public_or_off() -> None:
    with make_client(settings_for("fake", METRICS="public")) as client:
        assert client.get("/metrics").status_code == 200
    with make_client(settings_for("fake", METRICS="off")) as client:
        assert client.get("/metrics", headers=AUTH).status_code == 404


def test_rejections_are_counted() -> None:
    with make_client(settings_for("fake", RATE_LIMIT_PER_MINUTE="6", METRICS="public")) as client:
        for _ in range(3):
            client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)})
        text = client.get("/metrics").text
    assert 'face_service_rejections_total{reason="rate_limited"} 2.0' in text


def test_one_structured_log_line_per_request_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="face_service.access"), make_client(settings_for("fake")) as client:
        client.post("/verify-face", headers={**AUTH, "X-Request-ID": "req-42"}, json={"image_base64": b64(SELFIE)})
    (record,) = [r for r in caplog.records if r.name == "face_service.access"]
    line = json.loads(JsonLines().format(record))
    assert line["request_id"] == "req-42"
    assert (line["method"], line["route"], line["status"], line["faces"]) == ("POST", "/verify-face", 200, 1)
    assert line["duration_ms"] > 0
    text = json.dumps(line)
    assert AUTH["Authorization"].split()[1] not in text and b64(SELFIE)[:40] not in text


def test_a_worker_process_names_itself_in_its_log_lines() -> None:
    record = logging.LogRecord("adapters.models.onnx_model", logging.INFO, __file__, 1, "loaded", None, None)
    assert "process" not in json.loads(JsonLines().format(record))  # the serving process
    record.processName = "inference-1"
    assert json.loads(JsonLines().format(record))["process"] == "inference-1"


def test_openapi_docs_are_off_by_default_and_typed_when_on() -> None:
    with make_client(settings_for("fake")) as client:
        assert client.get("/docs/openapi.json").status_code == 404
    with make_client(settings_for("fake", EXPOSE_DOCS="true")) as client:
        assert client.get("/docs").status_code == 200  # the interactive page
        document = client.get("/docs/openapi.json").json()
    assert document["components"]["securitySchemes"]["BearerAuth"] == {"type": "http", "scheme": "bearer"}
    operations = {path: next(iter(item.values())) for path, item in document["paths"].items()}
    every = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert every == {
        "health",
        "verifyFace",
        "extractEmbedding",
        "batchExtract",
        "compareFaces",
        "createCollection",
        "listCollections",
        "getCollection",
        "deleteCollection",
        "enrollFace",
        "listSubjects",
        "getSubject",
        "deleteSubject",
        "deleteFace",
        "searchCollection",
        "verifySubject",
        "exportCollection",
        "importCollection",
        "indexPhoto",
        "listPhotos",
        "getPhoto",
        "deletePhoto",
        "searchPhotos",
        "listPeople",
        "getPerson",
        "listPersonPhotos",
        "namePerson",
        "mergePeople",
        "splitPerson",
        "notThisPerson",
        "deletePerson",
        "startClustering",
        "getClustering",
    }
    assert "security" not in operations["/health"]
    for path in ("/verify-face", "/extract-embedding", "/batch-extract"):
        assert set(operations[path]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
        assert {"400", "401", "413", "415", "422", "429", "503"} <= set(operations[path]["responses"])
