"""Every request gets an id (the caller's X-Request-ID, or a new one), returned in the response,
counted and timed in the metrics, and logged once as a structured line (with the API key's name):
never its body, image, embeddings or key."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Controller, Response, get
from litestar.datastructures import MutableScopeHeaders
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

from adapters.metrics import Metrics

access_log = logging.getLogger("face_service.access")
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REJECTION_REASONS = {429: "rate_limited", 503: "overloaded"}


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if SAFE_REQUEST_ID.fullmatch(candidate):  # never echo arbitrary bytes into logs and headers
                return candidate
    return uuid.uuid4().hex


SHUTTING_DOWN = b'{"error":"The service is shutting down; retry","code":"shutting_down"}'


def observe_requests(metrics: Metrics) -> Any:
    """Wraps the whole application (routing included): every HTTP request gets its id, metrics and
    one log line, HEAD is answered wherever GET is (the GET answer's headers, no body), and a request
    cut short by shutdown still gets a JSON 503."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def observed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            request_id = request_id_of(scope)
            state: dict[str, Any] = scope.setdefault("state", {})  # type: ignore[typeddict-item]
            state["request_id"] = request_id
            head = scope.get("method") == "HEAD"
            if head:
                scope["method"] = "GET"
            status, started = 500, False
            began = time.perf_counter()

            async def send_with_id(message: Message) -> None:
                nonlocal status, started
                if message["type"] == "http.response.start":
                    status, started = message["status"], True
                    MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
                elif head and message["type"] == "http.response.body":
                    message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            except asyncio.CancelledError:
                if not started:  # the server is stopping and gave up on this request
                    start: HTTPResponseStartEvent = {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
                    }
                    await send_with_id(start)
                    body: HTTPResponseBodyEvent = {
                        "type": "http.response.body",
                        "body": SHUTTING_DOWN,
                        "more_body": False,
                    }
                    await send_with_id(body)
                raise
            finally:
                if head:
                    scope["method"] = "HEAD"
                seconds = time.perf_counter() - began
                route = scope.get("path_template") or "unmatched"
                method = str(scope.get("method", ""))
                metrics.requests.labels(route=route, method=method, status=str(status)).inc()
                metrics.latency.labels(route=route, method=method).observe(seconds)
                if status in REJECTION_REASONS:
                    metrics.rejections.labels(reason=REJECTION_REASONS[status]).inc()
                key_name = state.get("key_name")  # set once the API key is known (never the key)
                if key_name is not None:
                    outcome = "forbidden" if status == 403 else "allowed"
                    metrics.key_requests.labels(key=key_name, outcome=outcome).inc()
                access_log.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                        "faces": state.get("faces"),
                        "key": key_name,  # the API key's name, never the key
                    },
                )

        return observed

    return middleware


class MetricsController(Controller):
    path = "/metrics"
    tags = ("operations",)
    include_in_schema = False

    @get(operation_id="metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, metrics: NamedDependency[Metrics]) -> Response[bytes]:
        """Prometheus text exposition: requests, latencies, stage timings, faces, queue, model."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


def observe_server_answers(metrics: Metrics) -> Callable[[int, str, str], None]:
    """Count and log the answers the connection layer sends itself (adapters/http/server.py)."""

    def observed(status: int, code: str, request_id: str) -> None:
        metrics.requests.labels(route="(connection)", method="", status=str(status)).inc()
        if status in REJECTION_REASONS:
            metrics.rejections.labels(reason=REJECTION_REASONS[status]).inc()
        access_log.info(
            "connection answered %d %s",
            status,
            code,
            extra={"request_id": request_id, "route": "(connection)", "status": status, "code": code},
        )

    return observed
