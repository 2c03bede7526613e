"""Overload, rate limits, shutdown and disconnects, on a real server process (real models)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from adapters.http.admission import RateLimitedError, RateLimiter
from bench.__main__ import API_KEY, rss_mb, start_service
from bench.load import multipart
from bench.load_test import overload
from bench.workloads import GROUP, PHONE_SIDE, variants
from tests.support.photos import SELFIE, b64
from tests.support.services import AUTH, make_client, settings_for

pytestmark = pytest.mark.real_model
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def small_server() -> Iterator[tuple[str, int]]:
    """Two workers and a queue of two: room for four requests at a time."""
    process, base, _ = start_service({"API_KEY": API_KEY, "INFERENCE_WORKERS": "2", "MAX_QUEUE": "2"})
    try:
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_overload_is_shed_at_once_and_the_service_recovers(small_server: tuple[str, int]) -> None:
    base, pid = small_server
    report = overload(base, pid, concurrency=16, requests=48)  # 8x the cores' worth in flight
    assert set(report.statuses) <= {200, 503}
    assert report.statuses.get(200, 0) >= 4 and report.statuses.get(503, 0) >= 1
    assert report.shed_max_s < 1.0  # refused at once, not after queueing
    assert report.accepted_max_s < 20.0  # accepted work finishes in bounded time
    assert report.rss_mb_after - report.rss_mb_before < 100  # memory stays flat
    assert report.serves_after


def test_a_shed_request_says_when_to_retry(small_server: tuple[str, int]) -> None:
    base, _ = small_server
    body, content_type = multipart([variants(GROUP, 1, 5)[0]])
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as client:
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(
                client.post("/extract-embedding?all_faces=true", content=body, headers={"Content-Type": content_type})
            )

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    shed = [r for r in results if r.status_code == 503]
    assert shed, [r.status_code for r in results]
    assert shed[0].headers["retry-after"] == "1"
    assert shed[0].json()["code"] == "overloaded"


def test_disconnecting_mid_upload_leaks_nothing() -> None:
    process, base, _ = start_service({"API_KEY": API_KEY, "INFERENCE_WORKERS": "1", "MAX_QUEUE": "0"})
    try:
        port = int(base.rsplit(":", 1)[1])
        before = rss_mb(process.pid)
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /extract-embedding HTTP/1.1\r\nHost: x\r\n"
                    + f"Authorization: Bearer {API_KEY}\r\n".encode()
                    + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                    + b'{"image_base64": "'
                    + b"A" * 5000
                )
        time.sleep(0.5)
        # With room for one request at a time, a leaked slot would turn this into a 503.
        response = httpx.post(
            f"{base}/extract-embedding", headers=HEADERS, json={"image_base64": b64(SELFIE)}, timeout=60
        )
        assert response.status_code == 200
        assert rss_mb(process.pid) - before < 50
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_sigterm_finishes_the_request_in_flight() -> None:
    process, base, _ = start_service({"API_KEY": API_KEY})
    phone = variants(GROUP, 1, 11, side=PHONE_SIDE)[0]
    body, content_type = multipart([phone])
    outcome: dict[str, object] = {}

    def call() -> None:
        response = httpx.post(
            f"{base}/extract-embedding?all_faces=true",
            content=body,
            timeout=60,
            headers={**HEADERS, "Content-Type": content_type},
        )
        outcome["status"], outcome["faces"] = response.status_code, response.json().get("faces_count")

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 30
    while "face_service_queue_depth 1.0" not in httpx.get(f"{base}/metrics", headers=HEADERS).text:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.01)
    began = time.monotonic()  # the request is inside the service: now stop it
    process.send_signal(signal.SIGTERM)
    caller.join(timeout=60)
    process.wait(timeout=60)
    assert outcome == {"status": 200, "faces": 6}
    assert time.monotonic() - began < 30  # within the grace period


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    limiter.check(0)
    limiter.check(0)
    with pytest.raises(RateLimitedError) as refused:
        limiter.check(0)
    assert refused.value.headers == {"Retry-After": "1"}
    limiter.check(1)  # another key has its own bucket
    now[0] = 1.0
    limiter.check(0)


def test_rate_limit_answers_429_with_retry_after() -> None:
    with make_client(settings_for("fake", RATE_LIMIT_PER_MINUTE="6")) as client:
        first = client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)})
        second = client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)})
    assert first.status_code == 200
    assert (second.status_code, second.json()["code"]) == (429, "rate_limited")
    assert int(second.headers["retry-after"]) >= 1


def test_cors_is_off_by_default_and_configurable() -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    with make_client(settings_for("fake")) as client:
        response = client.options("/verify-face", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with make_client(settings_for("fake", CORS_ORIGINS="https://app.example.com")) as client:
        response = client.options("/verify-face", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
