"""Hostile requests inside the documented limits: every one gets a 200 or a 4xx JSON answer with a
stable code, in a batch only for itself; every answer carries a request id and is counted."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.http.observability import observe_requests
from adapters.metrics import Metrics
from domain.embeddings import checked_embedding
from domain.errors import InvalidEmbedding
from tests.support.photos import SELFIE
from tests.support.services import AUTH, encode_png, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]


def multipart_body(parts: list[tuple[bytes, bytes]], boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    body = b"".join(f"--{boundary}\r\n".encode() + headers + b"\r\n\r\n" + data + b"\r\n" for headers, data in parts)
    return body + f"--{boundary}--\r\n".encode(), {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}


FILE_PART = (b'Content-Disposition: form-data; name="file"; filename="selfie.jpg"', SELFIE.read_bytes())


@pytest.mark.parametrize(
    ("name", "parts", "status", "code"),
    [
        (
            "text part with undecodable bytes",
            [(b'Content-Disposition: form-data; name="note"', b"\xff\xfe"), FILE_PART],
            200,
            None,
        ),
        (
            "text part with an unknown charset",
            [
                (b'Content-Disposition: form-data; name="note"\r\nContent-Type: text/plain; charset=x-nope', b"\xff"),
                FILE_PART,
            ],
            200,
            None,
        ),
        (
            "RFC 5987 filename",
            [
                (
                    b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%A9t%C3%A9.jpg",
                    SELFIE.read_bytes(),
                )
            ],
            200,
            None,
        ),
        (
            "1,001 parts",
            [(b'Content-Disposition: form-data; name="x"', b"1")] * 1001 + [FILE_PART],
            413,
            "request_too_large",
        ),
        (
            "a 64 KB filename",
            [(b'Content-Disposition: form-data; name="file"; filename="' + b"a" * 65536 + b'"', b"x")],
            413,
            "request_too_large",
        ),
    ],
)
def test_multipart_edge_cases(
    client: Client, name: str, parts: list[tuple[bytes, bytes]], status: int, code: str | None
) -> None:
    body, headers = multipart_body(parts)
    response = client.post("/extract-embedding", headers=headers, content=body)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["code"] == code
    else:
        assert response.json()["face_detected"] is True


def test_json_nested_very_deep_is_a_400(client: Client) -> None:
    deep = b'{"embedding_a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/compare-faces", headers={**AUTH, "Content-Type": "application/json"}, content=deep)
    assert response.status_code in (400, 422) and response.json()["code"] in ("invalid_json", "invalid_embedding")


def test_a_million_item_batch_is_refused_without_decoding_it(client: Client) -> None:
    body = b'{"images": [' + b",".join([b'""'] * 1_000_000) + b"]}"
    began = time.perf_counter()
    response = client.post("/batch-extract", headers={**AUTH, "Content-Type": "application/json"}, content=body)
    assert (response.status_code, response.json()["code"]) == (413, "batch_too_large")
    assert time.perf_counter() - began < 2.0  # decoding it would take seconds and hundreds of MB


@pytest.mark.parametrize("tiny", [1e-200, 1e-40, 5e-324])
def test_vectors_too_small_to_compare_are_refused(client: Client, tiny: float) -> None:
    unit = [1.0] + [0.0] * 511
    for payload, field in (
        ({"embedding_a": [tiny] * 512, "embedding_b": unit}, "embedding_a"),
        ({"embedding_a": unit, "candidates": [unit, [tiny] * 512]}, "candidates[1]"),
    ):
        response = client.post("/compare-faces", headers=AUTH, json=payload)
        assert (response.status_code, response.json()["code"], response.json()["field"]) == (
            422,
            "invalid_embedding",
            field,
        )


def test_no_score_is_ever_null_and_the_best_index_is_the_highest() -> None:
    rng = np.random.default_rng(1)
    for scale in (1e-30, 1e-3, 1.0, 1e30):
        values = (rng.standard_normal(512) * scale).tolist()
        assert np.isfinite(checked_embedding(values, 512, "x")).all()
    with pytest.raises(InvalidEmbedding):
        checked_embedding([1e-200] * 512, 512, "x")


def test_a_batch_respects_its_face_budget_item_by_item() -> None:
    images = [
        base64.b64encode(encode_png(np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8))).decode()
        for i in range(5)
    ]
    with make_client(settings_for("fake", MAX_BATCH_FACES="3")) as client:
        response = client.post("/batch-extract?all_faces=true", headers=AUTH, json={"images": images})
    results = response.json()["results"]
    assert [r["face_detected"] for r in results] == [True, True, True, False, False]
    assert [r.get("code") for r in results[3:]] == ["batch_face_limit", "batch_face_limit"]


def test_404_405_and_head_get_request_ids_and_are_counted(client: Client) -> None:
    missing = client.get("/no-such-route")
    wrong_method = client.get("/verify-face", headers=AUTH)
    head = client.head("/health")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert all(r.headers.get("x-request-id") for r in (missing, wrong_method, head))
    exposition = client.get("/metrics", headers=AUTH).text
    assert 'route="unmatched",status="404"' in exposition and 'status="405"' in exposition


def test_a_non_ascii_api_key_matches_its_utf8_bytes() -> None:
    key = "clé-sécrète-für-alle"
    with make_client(settings_for("fake", API_KEY=key)) as client:
        accepted = client.post(
            "/verify-face", headers={"Authorization": f"Bearer {key}".encode()}, json={"image_base64": ""}
        )
        refused = client.post("/verify-face", headers={"Authorization": f"Bearer {key[:-1]}ë".encode()}, json={})
    assert accepted.status_code != 401 and accepted.json()["code"] == "invalid_base64"
    assert refused.status_code == 401


def test_metrics_scrapes_do_not_spend_the_rate_limit() -> None:
    with make_client(settings_for("fake", RATE_LIMIT_PER_MINUTE="6")) as client:
        for _ in range(5):
            assert client.get("/metrics", headers=AUTH).status_code == 200
        assert client.post("/verify-face", headers=AUTH, json={"image_base64": ""}).status_code == 400


@pytest.mark.real_model
@pytest.mark.parametrize("size", [(1, 641), (641, 1), (10, 12000), (12000, 10)])
def test_images_too_thin_for_the_detector_get_no_face_and_never_fail_a_batch(
    real_client: Client, size: tuple[int, int]
) -> None:
    width, height = size
    thin = base64.b64encode(encode_png(np.full((height, width, 3), 90, np.uint8))).decode()
    alone = real_client.post("/extract-embedding", headers=AUTH, json={"image_base64": thin})
    assert alone.status_code == 200 and alone.json()["face_detected"] is False
    batch = real_client.post(
        "/batch-extract", headers=AUTH, json={"images": [thin, base64.b64encode(SELFIE.read_bytes()).decode()]}
    )
    assert batch.status_code == 200
    assert [r["face_detected"] for r in batch.json()["results"]] == [False, True]


def test_a_request_cut_short_at_shutdown_gets_a_json_503() -> None:
    sent: list[dict[str, Any]] = []

    async def never_answers(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(3600)

    async def send(message: Any) -> None:
        sent.append(message)

    async def scenario() -> None:
        app = observe_requests(Metrics())(never_answers)
        task = asyncio.ensure_future(app({"type": "http", "method": "POST", "path": "/x", "headers": []}, None, send))
        await asyncio.sleep(0.01)
        task.cancel()  # what uvicorn does to requests still running when its grace period ends
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert sent[0]["status"] == 503 and (b"content-type", b"application/json") in sent[0]["headers"]
    assert b'"code":"shutting_down"' in sent[1]["body"]
