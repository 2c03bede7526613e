"""The one place where errors become HTTP responses, all in the shape {"error", "code"}."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException

from adapters.http.inputs import ClientDisconnectedError
from adapters.wire.errors import body_for, status_for
from adapters.wire.schemas import ErrorResponse
from domain.errors import CollectionUnavailable, FaceServiceError

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "overloaded",
}


class UnauthorizedError(HTTPException):
    status_code = 401
    detail = "Missing or invalid API key: send 'Authorization: Bearer <key>'"


def error_response(status: int, body: ErrorResponse, headers: dict[str, str] | None = None) -> Response[ErrorResponse]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def handle_domain_error(request: Request[Any, Any, Any], error: FaceServiceError) -> Response[ErrorResponse]:
    status = status_for(error)
    # A quarantined collection stays so until an operator acts: no point in a retry seconds later.
    retry = status == 503 and not isinstance(error, CollectionUnavailable)
    headers = {"Retry-After": "5"} if retry else {}
    if getattr(error, "close_connection", False):  # refused while its body was still arriving
        headers["Connection"] = "close"
    return error_response(status, body_for(error), headers or None)


def handle_http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[ErrorResponse]:
    status = error.status_code
    if isinstance(error, ClientDisconnectedError):
        logger.info("client disconnected during %s %s", request.method, request.url.path)
        return error_response(400, ErrorResponse(error=error.detail, code="client_disconnected"))
    if status >= 500 and status != 503:
        return handle_unexpected(request, error)
    code = HTTP_CODES.get(status, "invalid_request")
    message = _client_message(status, error)
    headers = dict(error.headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status, ErrorResponse(error=message, code=code), headers or None)


def handle_job_error(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    """An error answer a worker already rendered as JSON."""
    status, body = getattr(error, "status", 500), getattr(error, "body", b"")
    return Response(body, status_code=status, media_type=MediaType.JSON)


def handle_worker_failure(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorResponse]:
    """The worker crashed or overran its time and was replaced: safe to retry."""
    code, reason = getattr(error, "code", "worker_crashed"), getattr(error, "reason", str(error))
    return error_response(503, ErrorResponse(error=reason, code=code), {"Retry-After": "1"})


def handle_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorResponse]:
    """A bug or an environment failure: log it in full, tell the client only a request id."""
    request_id = request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
    worker_traceback = getattr(error, "worker_traceback", None)
    logger.error(
        "unhandled error (request_id=%s) on %s %s%s",
        request_id,
        request.method,
        request.url.path,
        f" in the inference worker:\n{worker_traceback}" if worker_traceback else "",
        exc_info=None if worker_traceback else error,
    )
    return error_response(
        500,
        ErrorResponse(error="Internal server error", code="internal_error", request_id=request_id),
        {"X-Request-ID": request_id},
    )


def _client_message(status: int, error: HTTPException) -> str:
    if status == 413:
        return "The request body is larger than the configured limit (MAX_REQUEST_BYTES)"
    if status == 404:
        return "No such endpoint"
    if status == 405:
        return "Method not allowed on this endpoint"
    if status in (401, 408, 415, 429, 503):
        return str(error.detail)
    # Litestar's validation messages name the parameter without echoing internals.
    detail = str(error.detail) if error.detail else "Invalid request"
    extra = getattr(error, "extra", None)
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        first = extra[0]
        if first.get("key"):
            detail = f"{detail}: {first.get('key')} - {first.get('message', 'invalid')}"
    return detail
