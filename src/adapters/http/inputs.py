"""Reading request bodies on the event loop: only the bytes (`read_body`: bounded in size, time and
total bytes in flight). Parsing them, whatever grows with the body, is the wire format's
(`adapters/wire/bodies.py`) and runs in an inference worker or on the gallery's threads."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException, InternalServerException

AnyRequest = Request[Any, Any, Any]


class ClientDisconnectedError(HTTPException):
    """The caller went away before its body arrived: nobody will read the answer, and it is no bug."""

    status_code = 400
    detail = "Client disconnected"


class BodyTimeoutError(HTTPException):
    status_code = 408
    detail = "The request body did not arrive in time (BODY_TIMEOUT_SECONDS)"


def declared_length(request: AnyRequest) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


async def read_body(request: AnyRequest, deadline_seconds: float) -> bytes:
    """The whole body, read before any inference slot is taken (a slow upload costs a connection
    and its bytes, never a worker), bounded by MAX_REQUEST_BYTES (413) and BODY_TIMEOUT_SECONDS (408)."""
    chunks: list[bytes] = []  # joined once at the end: one copy of the body, not one per growth
    try:
        async with asyncio.timeout(deadline_seconds):
            async for chunk in request.stream():
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeoutError(headers={"Connection": "close"}) from None
    except InternalServerException:
        # Litestar's body stream raises this exception only for a client that disconnected.
        raise ClientDisconnectedError() from None
    return b"".join(chunks)
