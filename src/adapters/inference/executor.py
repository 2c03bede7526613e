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


_MALLOC_TRIM = _load_malloc_trim()


def trim_memory() -> None:
    """Give freed heap pages back to the system (glibc), after a job that decoded a large image."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class InferenceExecutor(ThreadPoolExecutor):
    """A thread pool whose jobs end by returning freed heap memory to the system.

    A decoded phone photo is 35 MB and the models' activations tens more; without the trim, glibc
    keeps those pages in its per-thread arenas and the resident size only ever grows.
    """

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="inference")

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(self._run_and_trim, fn, *args, **kwargs)  # type: ignore[arg-type]

    def _run_and_trim(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            trim_memory()
