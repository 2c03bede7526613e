"""Full-resolution pixel arrays kept from one job to the next, so that a phone photo is decoded into
memory already mapped.

A freshly allocated 35 MB array (an 11.6 MP photo) lives outside glibc's heap (over its 32 MB
mmap threshold): each job the kernel maps it, faults it in and zeroes it, and unmaps it when freed.
That cost a worker 5 to 11 ms of kernel time per phone photo on this machine, against a 24 ms
decode (docs/performance.md, "The phone photo's other 30 ms"). Decoding into an array kept from
the last job writes the same pixels into pages already there.

An array is handed out again only when nothing refers to it any more (no image, view or crop of
it is alive: numpy views keep their base alive, so its reference count says so); otherwise a new
one is allocated, as before. The arrays are kept per thread, at most `PER_THREAD`, each between
`MIN_BYTES` and `MAX_BYTES`, and given back once a worker is idle (`release`, called by
`adapters.inference.executor.trim_memory`; not by the heap trim after a busy job). A larger
image, or one decoded outside them (PNG, WebP, a JPEG OpenCV decodes), frees the unused ones
first (`release_unused`): a worker's peak memory stays what docs/reliability.md budgets for one
image.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from domain.model import Pixels

# Smaller arrays come from glibc's heap, which keeps freed memory anyway (executor.py).
MIN_BYTES = 8 * 1024 * 1024
# Larger ones (over 22 MP) are rare: allocated for their job and freed with it, as before.
MAX_BYTES = 64 * 1024 * 1024
# A decode, and the upright copy of a photo stored sideways (EXIF orientation).
PER_THREAD = 2


class PixelBuffers:
    """The kept arrays of every thread; one instance (`PIXEL_BUFFERS`) serves the process."""

    def __init__(self, *, min_bytes: int = MIN_BYTES, max_bytes: int = MAX_BYTES, per_thread: int = PER_THREAD) -> None:
        self._min_bytes = min_bytes
        self._max_bytes = max_bytes
        self._per_thread = per_thread
        self._lock = threading.Lock()
        self._kept: dict[int, list[Pixels]] = {}

    def array(self, shape: tuple[int, ...]) -> Pixels:
        """An uninitialised uint8 array of `shape`: a kept one no image refers to, or a new one."""
        size = math.prod(shape)
        if size > self._max_bytes:
            self.release_unused()  # the budget for one large image stays what it was without them
        if not self._min_bytes <= size <= self._max_bytes:
            return np.empty(shape, dtype=np.uint8)
        with self._lock:
            kept = self._kept.setdefault(threading.get_ident(), [])
            unused = [index for index in range(len(kept)) if _unreferenced(kept, index)]
            for index in unused:
                if kept[index].size >= size:
                    return kept[index][:size].reshape(shape)
            buffer: Pixels = np.empty(size, dtype=np.uint8)
            if len(kept) < self._per_thread:
                kept.append(buffer)
            elif unused:  # a smaller one nothing uses: replaced by the larger
                kept[unused[0]] = buffer
            return buffer.reshape(shape)

    def kept_bytes(self) -> int:
        with self._lock:
            return sum(buffer.nbytes for kept in self._kept.values() for buffer in kept)

    def release_unused(self) -> None:
        """Drop this thread's kept arrays that nothing uses: called before a large image is decoded
        outside them, so that a worker's peak memory is never theirs on top of that image's."""
        with self._lock:
            kept = self._kept.get(threading.get_ident(), [])
            kept[:] = [kept[index] for index in range(len(kept)) if not _unreferenced(kept, index)]

    def release(self) -> None:
        """Drop every kept array; those still in use are freed with their last image."""
        with self._lock:
            self._kept.clear()


def _references(kept: list[Pixels], index: int) -> int:
    return sys.getrefcount(kept[index])


# What `_references` counts for an array only the list holds (2 on CPython 3.11: the list's reference
# and getrefcount's argument), measured rather than assumed: interpreters differ in how they count
# the argument, and an array anything else holds or views must never look unused.
_UNUSED_REFERENCES = _references([np.empty(1, dtype=np.uint8)], 0)


def _unreferenced(kept: list[Pixels], index: int) -> bool:
    """Whether nothing but the list holds the array: no image, crop or view of it (views keep their base)."""
    return _references(kept, index) == _UNUSED_REFERENCES


PIXEL_BUFFERS = PixelBuffers()
