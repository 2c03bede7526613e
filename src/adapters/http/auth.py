"""API-key authentication: `Authorization: Bearer <key>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from adapters.http.admission import RateLimiter
from adapters.http.errors import UnauthorizedError


class ApiKeyGuard:
    """A Litestar guard accepting any of the configured keys (several allow rotation), then
    applying the per-key rate limit, if there is one. Keys are never logged or echoed."""

    def __init__(self, keys: tuple[str, ...], rate_limiter: RateLimiter | None = None) -> None:
        if not keys:
            raise ValueError("at least one API key is required")
        self._keys = tuple(key.encode("utf-8") for key in keys)
        self._rate_limiter = rate_limiter

    def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError()
        # Header values arrive as bytes that Litestar decodes as latin-1: re-encoding restores the
        # bytes the caller sent, which are compared with the UTF-8 of each configured key.
        presented = token.strip().encode("latin-1", errors="replace")
        # Compare against every key, without stopping early, so timing reveals nothing.
        matched = -1
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(presented, key):
                matched = index
        if matched < 0:
            raise UnauthorizedError()
        # Metrics scrapes come every few seconds from Prometheus; they never spend the key's budget.
        if self._rate_limiter is not None and connection.scope.get("path") != "/metrics":
            self._rate_limiter.check(matched)
