"""Admission control: a bounded queue in front of inference, and per-key rate limits.

Both answer at once instead of letting callers wait: a full queue is a 503 with Retry-After (the
caller, or a load balancer, tries again or elsewhere), an exhausted key is a 429 with Retry-After.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from litestar.exceptions import HTTPException


class OverloadedError(HTTPException):
    status_code = 503
    detail = "The service is at capacity; retry after the number of seconds in Retry-After"


class RateLimitedError(HTTPException):
    status_code = 429
    detail = "Too many requests for this API key; retry after the number of seconds in Retry-After"


class AdmissionQueue:
    """At most `capacity` requests inside (running or waiting for an inference worker).

    Only the event loop touches it, so a plain counter is enough.
    """

    def __init__(self, capacity: int, retry_after_seconds: int = 1) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._retry_after = str(retry_after_seconds)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_flight >= self.capacity:
            raise OverloadedError(headers={"Retry-After": self._retry_after})
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


class BodyBudget:
    """Bytes of request bodies held at once, over all requests (BODY_BUDGET_BYTES): from the first
    byte read to the answer. A request whose declared size (or, undeclared, the largest allowed)
    does not fit is refused at once with 503, before its body is read."""

    def __init__(self, total: int, largest: int, retry_after_seconds: int = 1) -> None:
        self.total = total
        self.largest = largest
        self.in_use = 0
        self._retry_after = str(retry_after_seconds)

    @contextmanager
    def reserve(self, declared: int | None) -> Iterator[None]:
        need = self.largest if declared is None else min(declared, self.largest)
        if self.in_use + need > self.total:
            raise OverloadedError(headers={"Retry-After": self._retry_after})
        self.in_use += need
        try:
            yield
        finally:
            self.in_use -= need


class RateLimiter:
    """A token bucket per API key: `per_minute` requests a minute, bursts up to `burst`."""

    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst if burst is not None else max(1, per_minute // 6))
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key index -> (tokens, last refill)

    def check(self, key_index: int) -> None:
        now = self._clock()
        tokens, last = self._buckets.get(key_index, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key_index] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self._rate)
            raise RateLimitedError(headers={"Retry-After": str(max(1, wait))})
        self._buckets[key_index] = (tokens - 1.0, now)
