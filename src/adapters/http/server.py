"""The connection layer under the application: what uvicorn does not bound by itself.

uvicorn closes idle keep-alive connections (KEEP_ALIVE_SECONDS) but waits forever for a request
line and headers that never come, accepts every connection, and answers its own 400s in plain
text. `guarded_protocol` returns uvicorn's h11 protocol with:
- a header deadline (HEADER_TIMEOUT_SECONDS): a connection that has not sent complete headers in
  time, from its start or since its last answer, is closed (with a JSON 408 when it sent part of a
  request);
- a cap on open connections (MAX_CONNECTIONS): the next one is answered a JSON 503 and closed,
  before a file descriptor per caller can run out;
- its own error answers in the service's JSON shape, with a request id, logged and counted.
The body's deadline and size are the application's (`inputs.read_body`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

ServerAnswerObserver = Callable[[int, str, str], None]  # (status, code, request id)


def raw_json_response(status: int, reason: str, code: str, message: str, request_id: str, retry: bool) -> bytes:
    body = f'{{"error":"{message}","code":"{code}","request_id":"{request_id}"}}'.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\nconnection: close\r\n" + ("retry-after: 1\r\n" if retry else "") + "\r\n"
    )
    return head.encode() + body


def guarded_protocol(
    header_timeout_seconds: float, max_connections: int, on_answer: ServerAnswerObserver
) -> type[H11Protocol]:
    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _received_since_answer = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._answer_raw(503, "Service Unavailable", "overloaded", "Too many open connections; retry")
                return
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            self._received_since_answer = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._received_since_answer = False
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout_seconds, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            in_request = self.cycle is not None and not self.cycle.response_complete
            if in_request or self.transport.is_closing():
                return  # headers arrived: the body and the answer have their own deadlines
            if self._received_since_answer:
                self._answer_raw(408, "Request Timeout", "header_timeout", "The request headers did not arrive in time")
            else:
                self.transport.close()

        def _answer_raw(self, status: int, reason: str, code: str, message: str) -> None:
            request_id = uuid.uuid4().hex
            self.transport.write(raw_json_response(status, reason, code, message, request_id, retry=status == 503))
            self.transport.close()
            on_answer(status, code, request_id)

        def send_400_response(self, msg: str) -> None:
            # A request h11 cannot parse: uvicorn's answer, in the service's shape.
            self._answer_raw(400, "Bad Request", "invalid_request", "Invalid HTTP request")

    return GuardedH11Protocol
