"""The bounded executor that runs inference off the event loop, and gives memory back after each job."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim if name else None  # type: ignore[assignment]
    except (OSError, AttributeError):
        return None
    return trim


class InferenceExecutor(ThreadPoolExecutor):
    """A thread pool whose jobs end by returning freed heap memory to the system.

    A decoded phone photo is 35 MB and the models' activations tens more; without the trim, glibc
    keeps those pages in its per-thread arenas and the resident size only ever grows.
    """

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="inference")
        self._trim = _load_malloc_trim()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(self._run_and_trim, fn, *args, **kwargs)  # type: ignore[arg-type]

    def _run_and_trim(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            if self._trim is not None:
                self._trim(0)


class InferencePool:
    """The inference executor across an application's lifespans: started on first use, shut down
    by `close`, started afresh by the next use (test clients open one app several times)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: InferenceExecutor | None = None

    @property
    def executor(self) -> InferenceExecutor:
        if self._executor is None:
            self._executor = InferenceExecutor(self.workers)
        return self._executor

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
