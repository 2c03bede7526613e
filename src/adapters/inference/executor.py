"""The bounded executor that runs inference off the event loop, and the rule by which inference gives
freed memory back to the system, shared with the worker processes (worker.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from adapters.images.pixel_buffers import PIXEL_BUFFERS

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# Trimming after every job cost a photo ~100 MB of page faults on its next job (18-21 ms of kernel
# time per group photo in `bench.photos_cpu`, +30% photos/s without them): the detector's
# activations are freed and faulted in again each time. So a busy worker keeps its freed heap for
# the next job up to this much, and gives it all back once it has been idle for a moment. The
# photo workloads settle at 60-175 MB free (glibc's heap creeps as it fragments). A large photo's
# pixels are mapped on their own (over glibc's 32 MB mmap threshold): up to 64 MB they are decoded
# into arrays kept per thread while busy (adapters/images/pixel_buffers.py), not counted here and
# given back when idle; a 40 MP image's go back when freed.
KEEP_FREE_HEAP_BYTES = 192 * 1024 * 1024
IDLE_TRIM_SECONDS = 0.25


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (field, ctypes.c_size_t)
        for field in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _load_libc() -> tuple[Callable[[int], int] | None, Callable[[], _MallInfo2] | None]:
    """glibc's malloc_trim and mallinfo2 (2.33+), or None elsewhere (musl, macOS, older glibc)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None, None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None, None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    info = getattr(libc, "mallinfo2", None)
    if info is not None:
        info.restype = _MallInfo2
    return trim, info


_MALLOC_TRIM, _MALLINFO2 = _load_libc()


def trim_heap() -> None:
    """Give glibc's freed heap pages back to the system."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def trim_memory() -> None:
    """Give everything held free back to the system (an idle worker): the decoders' kept pixel
    arrays (adapters/images/pixel_buffers.py) and glibc's freed heap pages."""
    PIXEL_BUFFERS.release()
    trim_heap()


def free_heap_bytes() -> int | None:
    """Bytes glibc holds freed in its heaps (mallinfo2's fordblks), or None where it cannot say."""
    return None if _MALLINFO2 is None else int(_MALLINFO2().fordblks)


def trim_if_heap_over(limit: int = KEEP_FREE_HEAP_BYTES) -> None:
    """After a job: trim the heap only when more than `limit` is held free in it (always, where that
    is unknown). The kept pixel arrays are not heap: they go when the worker is idle."""
    free = free_heap_bytes()
    if free is None or free > limit:
        trim_heap()


class InferenceExecutor(ThreadPoolExecutor):
    """A thread pool whose jobs keep at most KEEP_FREE_HEAP_BYTES freed while it is busy, and give
    the rest back IDLE_TRIM_SECONDS after its last job ends.

    A decoded phone photo is 35 MB and the models' activations tens more; without trimming, glibc
    keeps those pages in its per-thread arenas and the resident size only ever grows.
    """

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="inference")
        self._lock = threading.Lock()
        self._running = 0
        self._jobs_started = 0  # an idle trim goes ahead only if no job started since it was set

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(self._run_and_trim, fn, *args, **kwargs)  # type: ignore[arg-type]

    def _run_and_trim(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._running += 1
            self._jobs_started += 1
        try:
            return fn(*args, **kwargs)
        finally:
            trim_if_heap_over()
            with self._lock:
                self._running -= 1
                idle, started = self._running == 0, self._jobs_started
            if idle:
                timer = threading.Timer(IDLE_TRIM_SECONDS, self._trim_if_still_idle, args=(started,))
                timer.daemon = True
                timer.start()

    def _trim_if_still_idle(self, started: int) -> None:
        with self._lock:
            if self._running or self._jobs_started != started:
                return
        trim_memory()
