"""One collection's vectors in memory, searched exactly through a compact int8 copy (SQLite and memory galleries).

Each face is kept twice: its float32 vector (for the re-rank) and an int8 copy of it, a quarter of
the bytes, which a search scans first. The scan gives every face an
upper bound of its score, proven for every face (`FaceMatrix._int8_scores`); the faces whose bound
reaches what the best subjects already score are then scored exactly and ranked
(`FaceMatrix._refine`), so a search returns exactly what scoring every face exactly would: the same
subjects, faces and similarities. A search is bound by memory bandwidth; it reads d bytes per face,
not 4d. The int8 dot products are numkong's (SIMD kernels picked at run time: AVX-512 VNNI, AVX2,
NEON, SVE); several probes share one pass (`dots_packed`). A large append (a start's load, an
import) is coded by a background thread (`_code_backlog`); until then its rows are scanned in
float32, with that product's own bound, so results are exact all along.

The arrays grow by doubling their capacity (rows past `n` are never read, so never paged in), and a
deleted row is overwritten by the last one and the freed tail zeroed in both copies, so a removed
vector is gone from memory at once. Searches hold the read side of a readers-writer lock and writes
its write side, so a search never sees a half-moved row.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numkong
import numpy as np
import numpy.typing as npt

from adapters.stores.subject_table import SubjectTable
from domain.gallery import SubjectHit

FACE_ID_BYTES = 16  # a face id is 32 hex characters: kept as the 16 bytes they spell
QUANTIZE_ROWS = 4096  # rows quantized at a time: the float32 scratch stays in cache
BACKGROUND_ROWS = 1024  # appends of this many rows or more (a start's load, an import) are coded in the background
CODE_ROWS = 16_384  # rows the background coder quantizes per turn
CODER_PAUSE = 0.2  # seconds the coder waits after a large append, so a start's load runs first, alone
PART_ROWS = 32_768  # at least this many rows per scanning thread (below it, a hand-off costs more than it saves)
PROBE_GROUP = 8  # probes scanned together in one pass over the int8 copy (a group photo's faces)
BLOCK_ROWS = 64  # the first candidates are picked by the best score of each block of this many rows
EXACT_ROWS = 4096  # rows re-scored exactly at a time (bounds the float64 scratch)
MADV_POPULATE_WRITE = 23  # Linux's; Python 3.11's mmap module does not name it
UNPOOLED_BYTES = 1 << 20  # transient arrays this large get their own mapping (`_unpooled`)
SCAN_ROWS = 32_768  # rows a scanning thread takes through every step at a time: their scores stay in cache
# Rounding to the nearest code is off by at most half a step; computing x / scale in float32 adds a
# few units in the last place of the code (< 3e-5 of a step), so 0.5001 steps is a bound.
HALF_STEP = 0.5001
UNIT_ROUNDOFF = 2.0**-24  # float32
_TINY = np.finfo(np.float32).tiny
Scan = Literal["int8", "float32"]


def _scan_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        available = os.cpu_count() or 1
    return max(1, min(4, available))  # memory bandwidth, not cores, is the limit past a few threads


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_scan_threads(), thread_name_prefix="gallery-scan")
        return _POOL


class _Chunks:
    """Rows [0, rows) in chunks of SCAN_ROWS, taken in turn by whichever scanning thread is free: the
    calling thread and helpers from the pool. The caller waits only for chunks taken, never for a helper
    the scheduler has not started yet (on busy cores, that wait made the slow searches): if none
    starts, the caller scans every chunk itself."""

    def __init__(self, rows: int, work: Callable[[int, int], None]) -> None:
        self._bounds = list(itertools.pairwise([*range(0, rows, SCAN_ROWS), rows]))
        self._work = work
        self._next = itertools.count()  # next() on it is atomic: each chunk goes to one thread
        self._left = len(self._bounds)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None

    def take(self) -> None:
        while (i := next(self._next)) < len(self._bounds):
            try:
                self._work(*self._bounds[i])
            except BaseException as exc:  # handed to the caller by `scan`
                self._error = self._error or exc
            with self._lock:
                self._left -= 1
                if not self._left:
                    self._done.set()

    def scan(self, helpers: int) -> None:
        for _ in range(helpers):
            _pool().submit(self.take)
        self.take()
        self._done.wait()
        if self._error is not None:
            raise self._error


def _in_parts(rows: int, work: Callable[[int, int], None]) -> None:
    """Run `work(lo, hi)` over [0, rows) in chunks of whole blocks, shared by the calling thread and up to
    one helper per further core (numkong and numpy let go of the GIL while they work)."""
    if not rows:
        return
    _Chunks(rows, work).scan(max(0, min(_scan_threads(), rows // PART_ROWS) - 1))


def _zeroed_floats(rows: int, dimension: int, filled: int = 0) -> npt.NDArray[np.float32]:
    """A zeroed (rows, dimension) float32 array in its own anonymous mapping, with transparent huge pages
    off: numpy asks for huge pages for large arrays, and on a VM the kernel's compaction to find them
    made filling 2 GB at a start take 3 to 7 s where 4 KiB pages took under 3 (this copy is only read
    row by row, by the re-rank, so huge pages buy its searches nothing). Pages never written cost no
    memory, as with numpy's zeros."""
    size = rows * dimension * 4
    if not size:
        return np.zeros((rows, dimension), dtype=np.float32)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # private: faults 20% faster than shared
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux
        memory.madvise(mmap.MADV_NOHUGEPAGE)
        if filled:  # rows a load is about to write: their pages made in one call, not one fault each
            with contextlib.suppress(OSError):  # Linux 5.14 and later; before, they fault in as written
                memory.madvise(MADV_POPULATE_WRITE, 0, min(filled, rows) * dimension * 4)
    return np.frombuffer(memory, dtype=np.float32).reshape(rows, dimension)  # the array keeps the mapping alive


def _unpooled(shape: tuple[int, int], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """An array the background coder fills and drops (8 MiB a turn): from 1 MiB on, in its own anonymous
    mapping, unmapped with the array. From malloc it came from the coder thread's arena, whose top
    glibc gives back neither on free nor on malloc_trim: three such arenas stayed resident after a
    start, 24 MB at a million faces."""
    size = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if size < UNPOOLED_BYTES:
        return np.empty(shape, dtype=dtype)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


_HEX_DIGITS = np.full(256, 255, dtype=np.uint8)
_HEX_DIGITS[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def face_id_bytes(face_ids: Sequence[str]) -> npt.NDArray[np.bytes_]:
    """Face ids (32 lowercase hex characters each) as the 16 bytes they spell, in one pass over all of
    them; ValueError if one is anything else. Bytes sort as their hex spelling does."""
    text = np.array(face_ids, dtype=f"S{2 * FACE_ID_BYTES + 1}").view(np.uint8).reshape(len(face_ids), -1)
    digits = _HEX_DIGITS[text[:, : 2 * FACE_ID_BYTES]]
    if (digits == 255).any() or text[:, 2 * FACE_ID_BYTES].any():
        raise ValueError("a face id is 32 lowercase hex characters")
    packed = (digits[:, 0::2] << 4) | digits[:, 1::2]
    return np.ascontiguousarray(packed).view(f"S{FACE_ID_BYTES}").reshape(len(face_ids))


def face_id_text(packed: bytes) -> str:
    """A face id kept as 16 bytes, spelled again (numpy drops an `S16` value's trailing zero bytes)."""
    return packed.ljust(FACE_ID_BYTES, b"\0").hex()


@dataclass(frozen=True, slots=True)
class Quantized:
    """Rows as int8 codes and one float32 scale each: row i is `scales[i] * codes[i]` to within
    `HALF_STEP * scales[i]` per value. `finite` is False when a row held a NaN or an infinity."""

    codes: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]
    largest_norm: float  # the longest row's L2 norm (rounded up)
    finite: bool


def quantize(vectors: npt.NDArray[np.float32]) -> Quantized:
    """Symmetric per-row scalar quantization: scale = max|x| / 127, code = round(x / scale) in [-127, 127]
    (at least the smallest normal float32, so a row of zeros gets zero codes). `QUANTIZE_ROWS` rows at a
    time."""
    count, dimension = vectors.shape
    codes = _unpooled((count, dimension), np.int8)
    scales = np.empty(count, dtype=np.float32)
    scratch = _unpooled((min(count, QUANTIZE_ROWS), dimension), np.float32)
    finite, largest = True, 0.0
    for lo in range(0, count, QUANTIZE_ROWS):
        rows = vectors[lo : lo + QUANTIZE_ROWS]
        hi = lo + len(rows)
        peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
        finite = finite and bool(np.isfinite(peak).all())
        scale = np.maximum(peak / np.float32(127), _TINY)
        work = scratch[: len(rows)]
        np.multiply(rows, (np.float32(1) / scale)[:, None], out=work)
        numkong.astype(work, "int8", out=codes[lo:hi])  # rounds half to even, saturates, NaN -> 0
        scales[lo:hi] = scale
        largest = max(largest, float(np.einsum("ij,ij->i", rows, rows).max()))
    # The float32 sum of squares is within d * 2^-24 of the true one; 1e-4 more covers it for d < 1600.
    return Quantized(codes, scales, math.sqrt(largest) * (1 + 1e-4), finite)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer keeps new readers out, so writes are not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class FaceMatrix:
    """The vectors of one collection, their int8 copy, face ids and subjects, in parallel arrays of `n` used rows."""

    def __init__(self, dimension: int, capacity: int = 0, filled: int = 0) -> None:
        """`filled`: rows a load is about to append (their float32 pages are made at once)."""
        self.dimension = dimension
        self._n = 0
        self._vectors = _zeroed_floats(capacity, dimension, filled)
        self._codes = np.zeros((capacity, dimension), dtype=np.int8)
        self._scales = np.zeros(capacity, dtype=np.float32)
        self._face_ids = np.zeros(capacity, dtype=f"S{FACE_ID_BYTES}")
        self._subject_of = np.zeros(capacity, dtype=np.int32)  # a slot in the subject table
        # Rows [0, _coded) have their int8 codes; the rest (a large append's) wait for the background
        # coder, and searches scan them in float32 meanwhile.
        self._coded = 0
        self._coder: threading.Thread | None = None
        self._last_large_append = 0.0  # time.monotonic() of the last append left to the coder
        self._version = 0  # changes whenever rows move or go or the arrays are replaced: the coder's turn is redone
        self._backlog_norm = (-1, 0, 0, 0.0)  # (version, start, end, the largest norm of rows [start, end))
        # Bounds over every row coded since the last clear (deletes leave them: still bounds, if loose).
        self._largest_scale = 0.0
        self._largest_norm = 0.0
        self._finite = True  # False once a row with a NaN or an infinity was coded: then only float32 scans
        self._table = SubjectTable()  # slot -> external id (or photo id) and face count
        self._lock = ReadWriteLock()

    def __len__(self) -> int:
        return self._n

    @property
    def subjects(self) -> int:
        return len(self._table)

    def faces_of(self, external_id: str) -> int:
        return self._table.faces_of(external_id)

    def has_subject(self, external_id: str) -> bool:
        return self._table.slot(external_id) is not None

    @property
    def nbytes(self) -> int:
        """Memory the arrays hold (capacity, not only used rows)."""
        arrays = (self._vectors, self._codes, self._scales, self._face_ids, self._subject_of)
        return sum(int(array.nbytes) for array in arrays) + self._table.nbytes

    def append(self, face_ids: Sequence[str], subjects: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Add rows; `vectors` is (len(face_ids), dimension) float32.

        A few rows are coded to int8 at once (before the lock: searches go on). A large batch (a
        start's load, an import) is coded by a background thread once such appends pause: the rows
        are searchable at once (in float32, exactly) and move to the int8 scan as they are coded, so a
        start does not wait for it."""
        if len(face_ids):
            self._append(face_id_bytes(face_ids), subjects, vectors)

    def add_subjects(self, names: Sequence[str]) -> npt.NDArray[np.int32]:
        """Register subjects (names not held yet, distinct) before their faces, for `append_rows`: their
        slots. A start's load registers every subject at once; those left with no face are forgotten by
        `forget_faceless`."""
        with self._lock.writing():
            return self._table.add(names)

    def append_rows(
        self, face_ids: npt.NDArray[np.bytes_], slots: npt.NDArray[np.int32], vectors: npt.NDArray[np.float32]
    ) -> None:
        """`append` for face ids already packed (`face_id_bytes`) and subjects given by slot (`add_subjects`)."""
        if len(face_ids):
            self._append(face_ids, slots, vectors)

    def forget_faceless(self) -> None:
        with self._lock.writing():
            self._table.free_empty()

    def _append(
        self,
        ids: npt.NDArray[np.bytes_],
        subjects: Sequence[str] | npt.NDArray[np.int32],
        vectors: npt.NDArray[np.float32],
    ) -> None:
        count = len(ids)
        compact = quantize(np.ascontiguousarray(vectors, dtype=np.float32)) if count < BACKGROUND_ROWS else None
        with self._lock.writing():
            if compact is None:
                self._last_large_append = time.monotonic()
            slots = subjects if isinstance(subjects, np.ndarray) else self._table.slots(subjects)
            self._reserve(self._n + count)
            start, end = self._n, self._n + count
            self._vectors[start:end] = vectors
            self._face_ids[start:end] = ids
            self._subject_of[start:end] = slots
            self._table.count_faces(slots)
            self._n = end
            if compact is not None and self._coded == start:
                self._store_codes(start, compact)
            elif self._coder is None or not self._coder.is_alive():
                self._coder = threading.Thread(target=self._code_backlog, name="gallery-coder", daemon=True)
                self._coder.start()

    def wait_coded(self, timeout: float | None = None) -> bool:
        """Wait until every row has its int8 codes (the benchmark, tests); False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock.reading():
                if self._coded >= self._n:
                    return True
                coder = self._coder
            if coder is not None:
                coder.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                with self._lock.reading():
                    return self._coded >= self._n

    def _code_backlog(self) -> None:
        """The background coder: once large appends pause for CODER_PAUSE (a start's load is CPU-bound
        too, and on a busy machine the two would share its cores), it quantizes rows [_coded, n) a
        turn at a time, holding no lock while it works (searches go on), and stores each turn's codes
        under the write lock unless rows moved or the arrays were replaced meanwhile (`_version`: then
        that turn is done again; what it read may have been half-moved)."""
        while True:
            while (idle := time.monotonic() - self._last_large_append) < CODER_PAUSE:
                time.sleep(CODER_PAUSE - idle)  # a load or an import is under way: it goes first
            with self._lock.reading():
                start, end, version = self._coded, min(self._n, self._coded + CODE_ROWS), self._version
                vectors = self._vectors
            compact = quantize(vectors[start:end]) if start < end else None
            with self._lock.writing():
                if compact is None:
                    if self._coded >= self._n:
                        self._coder = None
                        return
                elif self._version == version and self._coded == start:
                    self._store_codes(start, compact)

    def _store_codes(self, start: int, compact: Quantized) -> None:
        """Rows [start, start + len) get their codes; the coded prefix grows to cover them."""
        end = start + len(compact.codes)
        self._codes[start:end] = compact.codes
        self._scales[start:end] = compact.scales
        self._bound_by(compact)
        self._coded = max(self._coded, end)

    def _bound_by(self, compact: Quantized) -> None:
        self._largest_scale = max(self._largest_scale, float(compact.scales.max()))
        self._largest_norm = max(self._largest_norm, compact.largest_norm)
        self._finite = self._finite and compact.finite

    def remove_face(self, face_id: str) -> bool:
        try:
            packed = face_id_bytes([face_id])[0]
        except ValueError:
            return False  # no face has such an id
        with self._lock.writing():
            rows = np.flatnonzero(self._face_ids[: self._n] == packed)
            if not rows.size:
                return False
            self._remove_rows(rows)
            return True

    def remove_faces(self, face_ids: Sequence[str]) -> int:
        """`remove_face` for many faces in one pass over the rows (a person's: hundreds, where one
        scan each would hold the write lock that long); how many were found."""
        if not face_ids:
            return 0
        packed = face_id_bytes(face_ids)  # the store's ids: ValueError would be a bug
        with self._lock.writing():
            rows = np.flatnonzero(np.isin(self._face_ids[: self._n], packed))
            if rows.size:
                self._remove_rows(rows)
            return int(rows.size)

    def remove_subject(self, external_id: str) -> int:
        with self._lock.writing():
            slot = self._table.slot(external_id)
            if slot is None:
                return 0
            rows = np.flatnonzero(self._subject_of[: self._n] == slot)
            self._remove_rows(rows)
            return int(rows.size)

    def clear(self) -> None:
        """Forget every vector, zeroing the memory they held (both copies)."""
        with self._lock.writing():
            self._vectors[: self._n] = 0
            self._codes[: self._n] = 0
            self._scales[: self._n] = 0
            self._vectors = _zeroed_floats(0, self.dimension)
            self._codes = np.zeros((0, self.dimension), dtype=np.int8)
            self._scales = np.zeros(0, dtype=np.float32)
            self._face_ids = np.zeros(0, dtype=f"S{FACE_ID_BYTES}")
            self._subject_of = np.zeros(0, dtype=np.int32)
            self._n = self._coded = 0
            self._version += 1
            self._largest_scale, self._largest_norm, self._finite = 0.0, 0.0, True
            self._table.clear()

    def search(
        self,
        probes: npt.NDArray[np.float32],
        top_k: int,
        external_id: str | None = None,
        *,
        scan: Scan = "int8",
    ) -> tuple[list[list[SubjectHit]], int]:
        """Per probe (a row of `probes`), the `top_k` subjects with the highest cosine (unit vectors: dot
        product), each with its best face, best first; and how many faces were searched.

        Exact: the same hits as scoring every face in float64 and ranking by (score descending, face
        id), each subject once. `scan` picks the first pass only: the int8 copy (a quarter of the
        bytes) or the float32 vectors (the reference; what the benchmark compares with). Several
        probes (a group photo's faces) share each pass over the matrix. `external_id` restricts the
        search to that subject's faces, scored exactly."""
        probes = np.ascontiguousarray(probes, dtype=np.float32).reshape(-1, self.dimension)
        with self._lock.reading():
            n = self._n
            if external_id is not None:
                slot = self._table.slot(external_id)
                if slot is None:
                    return [[] for _ in range(len(probes))], 0
                rows = np.flatnonzero(self._subject_of[:n] == slot)
                return [self._rank(rows, probe, top_k) for probe in probes], len(rows)
            if not n:
                return [[] for _ in range(len(probes))], 0
            wanted = top_k * self._table.most_faces()  # holds >= top_k subjects: none has more faces than that
            use_int8 = scan == "int8" and self._coded > 0 and self._finite and bool(np.isfinite(probes).all())
            hits: list[list[SubjectHit]] = []
            for lo in range(0, len(probes), PROBE_GROUP):
                group = probes[lo : lo + PROBE_GROUP]
                coarse = self._int8_scores(group, n) if use_int8 else self._float32_scores(group, n)
                for j, probe in enumerate(group):
                    hits.append(self._refine(probe, coarse, j, top_k, wanted, n))
            return hits, n

    def groups_reaching(
        self,
        probe: npt.NDArray[np.float32],
        floor: float,
        top_k: int,
        after: tuple[float, str] | None = None,
        *,
        scan: Scan = "int8",
    ) -> tuple[list[SubjectHit], int, int]:
        """Every subject (group: for a photo matrix, a photo) whose best face scores at least `floor`:
        the `top_k` ranked after `after` (score descending, then name), each with its best face; how
        many reach `floor` on every page; and how many faces were searched.

        Exact, as `search`: the first pass gives every face an upper bound of its score, and only the
        faces whose bound reaches `floor` are scored exactly (a face below it cannot reach it)."""
        probes = np.ascontiguousarray(probe, dtype=np.float32).reshape(1, self.dimension)
        with self._lock.reading():
            n = self._n
            if not n:
                return [], 0, 0
            coarse = self._first_pass(probes, n, scan)
            page, count = self._groups_page(coarse, 0, probes[0], floor, top_k, after, n)
            return page, count, n

    def groups_reaching_many(
        self, probes: npt.NDArray[np.float32], floor: float, top_k: int, *, scan: Scan = "int8"
    ) -> list[list[SubjectHit]]:
        """`groups_reaching`'s first page for each probe (a row of `probes`: a new photo's faces), the
        same hits; PROBE_GROUP probes share each pass over the matrix, as in `search`."""
        probes = np.ascontiguousarray(probes, dtype=np.float32).reshape(-1, self.dimension)
        with self._lock.reading():
            n = self._n
            if not n:
                return [[] for _ in range(len(probes))]
            hits: list[list[SubjectHit]] = []
            for lo in range(0, len(probes), PROBE_GROUP):
                group = probes[lo : lo + PROBE_GROUP]
                coarse = self._first_pass(group, n, scan)
                hits += [self._groups_page(coarse, j, probe, floor, top_k, None, n)[0] for j, probe in enumerate(group)]
            return hits

    def _first_pass(self, probes: npt.NDArray[np.float32], n: int, scan: Scan) -> Coarse:
        use_int8 = scan == "int8" and self._coded > 0 and self._finite and bool(np.isfinite(probes).all())
        return self._int8_scores(probes, n) if use_int8 else self._float32_scores(probes, n)

    def _groups_page(
        self,
        coarse: Coarse,
        j: int,
        probe: npt.NDArray[np.float32],
        floor: float,
        top_k: int,
        after: tuple[float, str] | None,
        n: int,
    ) -> tuple[list[SubjectHit], int]:
        """Probe j's page of `groups_reaching` from its first-pass scores, and the count."""
        unit, bound = float(coarse.units[j]), float(coarse.bounds[j])
        cut = (floor - bound) / unit if math.isfinite(bound) and unit > 0 else -math.inf
        rows = coarse.reaching(j, cut) if math.isfinite(cut) else np.arange(n)
        best, scores = self._ranked(rows, probe)  # best first
        count = int(np.count_nonzero(scores >= floor))
        descending = -scores[:count]
        start = end = 0
        if after is not None:  # the page starts at the cursor's score; its ties are sorted out below
            start = int(np.searchsorted(descending, -after[0], side="left"))
            end = int(np.searchsorted(descending, -after[0], side="right"))
        end = min(count, end + top_k)
        if end:  # the whole block of the last score taken, so that ties are ranked by name
            end = int(np.searchsorted(descending, descending[end - 1], side="right"))
        ranked = sorted(
            (-float(scores[i]), self._table.name(int(self._subject_of[best[i]])), int(best[i]))
            for i in range(start, end)
        )
        page = [
            SubjectHit(name, face_id_text(self._face_ids[row]), -negated)
            for negated, name, row in ranked
            if after is None or -negated < after[0] or (-negated == after[0] and name > after[1])
        ]
        return page[:top_k], count

    # --- the first pass: approximate scores with a proven bound on their error

    def _int8_scores(self, probes: npt.NDArray[np.float32], n: int) -> Coarse:
        """Upper bounds of the probes' scores from the int8 copy: `scores[j, i] * units[j] + bounds[j]`
        is at least probe j's true score against face i.

        With the probe p = p' + r_p (p' = s_p q_p, its int8 form, r_p what rounding left) and a face
        x = x' + r_x (x' = s_x q_x), the scan computes p'.x' = s_p s_x (q_p . q_x), exactly in integers,
        and

            p.x - p'.x' = r_p . x + p' . r_x,   so   p.x <= p'.x' + |r_p| |x| + |p'| |r_x|

        (Cauchy-Schwarz). |r_p| and |p'| are computed here; |x| is at most the longest row added (1 for
        the unit vectors the stores keep); each value of r_x is at most HALF_STEP * s_x, so
        |r_x| <= HALF_STEP * s_x * sqrt(d). So the bound is

            s_p s_x (q_p . q_x) + |p'| HALF_STEP sqrt(d) s_x + |r_p| |x|
              = s_p * [s_x * (q_p . q_x + c)] + |r_p| |x|,   c = |p'| HALF_STEP sqrt(d) / s_p

        and the scan keeps the bracket: one multiply by s_x per face, as the estimate alone would take;
        a face's own scale widens only its own bound. The float32 arithmetic adds relative errors of a
        few units in the last place, covered by `_slack`. The bound holds for every face: nothing in it
        is probabilistic.
        """
        count = len(probes)
        compact = quantize(probes)
        rebuilt = compact.codes.astype(np.float64) * compact.scales[:, None].astype(np.float64)  # exact
        residual = np.linalg.norm(probes.astype(np.float64) - rebuilt, axis=1)
        widening = (np.linalg.norm(rebuilt, axis=1) * HALF_STEP * math.sqrt(self.dimension) / compact.scales).astype(
            np.float32
        )
        bounds = residual * self._largest_norm + _slack(probes, self._largest_norm)
        units = compact.scales.astype(np.float64)
        coarse = Coarse.empty(count, n, units, bounds)
        codes, scales, scores, coded = self._codes, self._scales, coarse.scores, self._coded
        packed = numkong.dots_pack(compact.codes) if count > 1 else None  # each face row read once for all probes

        def work(lo: int, hi: int) -> None:  # lo is a whole block (SCAN_ROWS is a multiple of BLOCK_ROWS)
            part = scores[:, lo:hi]
            if packed is None:
                numkong.cdist(compact.codes, codes[lo:hi], metric="dot", out=part)
                np.add(part, widening[:, None], out=part)
            else:
                dots = np.asarray(numkong.dots_packed(codes[lo:hi], packed))  # (hi - lo, count) int32
                np.add(dots.T, widening[:, None], out=part)
            np.multiply(part, scales[lo:hi], out=part)
            coarse.summarize(lo, hi)

        _in_parts(coded, work)
        if coded < n:  # rows not coded yet: float32, their bound carried into these units
            tail, tail_bounds = self._float32_bounded(probes, coded, n)
            scores[:, coded:n] = (tail + (tail_bounds - bounds)[:, None]) / units[:, None]
            coarse.summarize(coded - coded % BLOCK_ROWS, n)
        return coarse

    def _float32_scores(self, probes: npt.NDArray[np.float32], n: int) -> Coarse:
        """Scores from one float32 matrix product over every row (`_float32_bounded`)."""
        scores, bounds = self._float32_bounded(probes, 0, n)
        coarse = Coarse.empty(len(probes), n, np.ones(len(probes)), bounds)
        coarse.scores[:, :n] = scores
        coarse.summarize(0, n)
        return coarse

    def _float32_bounded(
        self, probes: npt.NDArray[np.float32], lo: int, hi: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """The probes' float32 scores against rows [lo, hi), and per probe a bound of their error. A
        float32 dot product of length d is within gamma_d * sum|p_i x_i| <= gamma_d |p| |x| of the true
        one, gamma_d = d u / (1 - d u) (u = 2^-24), whatever order the BLAS sums in."""
        largest = self._largest_norm_of(lo, hi)
        gamma = self.dimension * UNIT_ROUNDOFF / (1 - self.dimension * UNIT_ROUNDOFF)
        lengths = np.linalg.norm(probes.astype(np.float64), axis=1)
        scores: npt.NDArray[np.float32] = probes @ self._vectors[lo:hi].T
        return scores, gamma * lengths * largest + _slack(probes, largest)

    def _largest_norm_of(self, lo: int, hi: int) -> float:
        """A bound of the rows' norms: the coded rows' is kept; rows not coded yet are measured, once per
        backlog (it stays a bound while the coder shrinks the backlog and nothing moves)."""
        if hi <= self._coded:
            return self._largest_norm
        version, start, end, largest = self._backlog_norm
        if (version, end) != (self._version, hi) or max(lo, self._coded) < start:
            start = max(lo, self._coded)
            rows = self._vectors[start:hi]
            largest = math.sqrt(float(np.einsum("ij,ij->i", rows, rows).max())) * (1 + 1e-4)
            self._backlog_norm = (self._version, start, hi, largest)
        return max(self._largest_norm, largest)

    # --- the second pass: exact scores of every face that could still be among the best

    def _refine(
        self, probe: npt.NDArray[np.float32], coarse: Coarse, j: int, top_k: int, wanted: int, n: int
    ) -> list[SubjectHit]:
        """Probe j's exact top_k from its first-pass scores (upper bounds of the true ones, `Coarse`).

        1. `first`: every face whose first-pass score reaches a cut that at least `wanted` faces reach
           (top_k times the most faces any subject has), so it holds top_k subjects or more.
        2. Scored exactly, they give `floor`: the top_k-th best subject score among them. The true
           top_k-th best subject score over the whole collection is at least `floor`.
        3. A face whose upper bound is below `floor` has a true score below it, so it can be neither one
           of the top_k subjects' best face nor make another subject enter them. Every other face is
           scored exactly and ranked: the result is the exact one, ties included.
        """
        unit, bound = float(coarse.units[j]), float(coarse.bounds[j])
        if wanted >= n or not math.isfinite(bound) or unit <= 0:
            return self._rank(np.arange(n), probe, top_k)
        first = coarse.reaching(j, coarse.cut_reached_by(j, wanted))
        floor = self._kth_subject_score(first, probe, top_k)
        if floor is None:  # fewer than top_k subjects: only NaN scores do that
            return self._rank(np.arange(n), probe, top_k)
        cut = (floor - bound) / unit
        if not math.isfinite(cut):
            return self._rank(np.arange(n), probe, top_k)
        rows = coarse.reaching(j, cut)
        return self._rank(rows, probe, top_k)

    def _exact_scores(self, rows: npt.NDArray[np.intp], probe: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Float64 dot products of the probe with these rows, each summed the same way whatever its
        position (numpy's pairwise sum along a row), so equal vectors get equal scores."""
        target = probe.astype(np.float64)
        scores = np.empty(len(rows), dtype=np.float64)
        for lo in range(0, len(rows), EXACT_ROWS):
            chunk = rows[lo : lo + EXACT_ROWS]
            scores[lo : lo + len(chunk)] = (self._vectors[chunk].astype(np.float64) * target).sum(axis=1)
        return scores

    def _ranked(
        self, rows: npt.NDArray[np.intp], probe: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """Each subject's best face among `rows` (score descending, then face id), best subject first."""
        scores = self._exact_scores(rows, probe)
        order = np.lexsort((self._face_ids[rows], -scores))
        _, first = np.unique(self._subject_of[rows[order]], return_index=True)
        best = order[np.sort(first)]
        return rows[best], scores[best]

    def _kth_subject_score(self, rows: npt.NDArray[np.intp], probe: npt.NDArray[np.float32], k: int) -> float | None:
        _, scores = self._ranked(rows, probe)
        return float(scores[k - 1]) if len(scores) >= k else None

    def _rank(self, rows: npt.NDArray[np.intp], probe: npt.NDArray[np.float32], top_k: int) -> list[SubjectHit]:
        if not len(rows):
            return []
        best, scores = self._ranked(rows, probe)
        return [
            SubjectHit(self._table.name(int(self._subject_of[row])), face_id_text(self._face_ids[row]), float(score))
            for row, score in zip(best[:top_k].tolist(), scores[:top_k].tolist(), strict=True)
        ]

    # --- inside

    def _reserve(self, rows: int) -> None:
        capacity = len(self._vectors)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 16)
        n = self._n
        vectors = _zeroed_floats(capacity, self.dimension)  # pages past n stay untouched
        vectors[:n] = self._vectors[:n]
        codes = np.zeros((capacity, self.dimension), dtype=np.int8)
        codes[:n] = self._codes[:n]
        scales = np.zeros(capacity, dtype=np.float32)
        scales[:n] = self._scales[:n]
        face_ids = np.zeros(capacity, dtype=f"S{FACE_ID_BYTES}")
        face_ids[:n] = self._face_ids[:n]
        subject_of = np.zeros(capacity, dtype=np.int32)
        subject_of[:n] = self._subject_of[:n]
        # The old arrays go with their last reference; zero them first, so no copy of a vector lingers
        # in memory the allocator hands back.
        self._vectors[:n] = 0
        self._codes[:n] = 0
        self._version += 1
        self._vectors, self._codes, self._scales = vectors, codes, scales
        self._face_ids, self._subject_of = face_ids, subject_of

    def _remove_rows(self, rows: npt.NDArray[np.intp]) -> None:
        """Fill the holes inside the first n - len(rows) rows with the kept rows past that, zero the tail."""
        n = self._n
        keep = n - len(rows)
        removed = np.zeros(n, dtype=bool)
        removed[rows] = True
        subjects = self._subject_of[rows]  # a copy (fancy indexing), taken before rows move
        holes = rows[rows < keep]
        movers = np.flatnonzero(~removed[keep:]) + keep
        for array in (self._vectors, self._codes, self._scales, self._face_ids, self._subject_of):
            array[holes] = array[movers]
        uncoded = holes[(holes < self._coded) & (movers >= self._coded)]  # moved into the coded prefix
        if uncoded.size:
            compact = quantize(self._vectors[uncoded])
            self._codes[uncoded] = compact.codes
            self._scales[uncoded] = compact.scales
            self._bound_by(compact)
        self._coded = min(self._coded, keep)
        self._version += 1
        self._vectors[keep:n] = 0
        self._codes[keep:n] = 0
        self._scales[keep:n] = 0
        self._face_ids[keep:n] = b""
        self._subject_of[keep:n] = 0
        self._n = keep
        self._table.uncount_faces(subjects)


def _slack(probes: npt.NDArray[np.float32], largest_norm: float) -> npt.NDArray[np.float64]:
    """What float rounding outside the bounded dot products can add (scales, products, the float32
    cut): far below 1e-5 of |p| |x|, and far above it in no case."""
    lengths: npt.NDArray[np.float64] = np.linalg.norm(probes.astype(np.float64), axis=1)
    return 1e-5 * (1 + lengths * max(largest_norm, 1.0))


@dataclass(frozen=True, slots=True)
class Coarse:
    """A group of probes' first-pass scores: `scores[j, i] * units[j] + bounds[j]` is at least probe j's
    true score against face i (an upper bound), and `scores` ranks faces as their estimates nearly do.
    Rows are padded with -inf to whole blocks of BLOCK_ROWS, and
    `block_best[j, b]` is the best score in block b, so the faces above a cut are found by reading
    n / BLOCK_ROWS block maxima and the few blocks that reach it, not all n scores."""

    scores: npt.NDArray[np.float32]  # (probes, blocks * BLOCK_ROWS)
    block_best: npt.NDArray[np.float32]  # (probes, blocks)
    units: npt.NDArray[np.float64]
    bounds: npt.NDArray[np.float64]

    @classmethod
    def empty(cls, probes: int, n: int, units: npt.NDArray[np.float64], bounds: npt.NDArray[np.float64]) -> Coarse:
        blocks = -(-n // BLOCK_ROWS)
        scores = np.empty((probes, blocks * BLOCK_ROWS), dtype=np.float32)
        scores[:, n:] = -np.inf
        return cls(scores, np.empty((probes, blocks), dtype=np.float32), units, bounds)

    def summarize(self, lo: int, hi: int) -> None:
        """Fill `block_best` for rows [lo, hi): lo is a whole block; hi is too, or the last row."""
        first, last = lo // BLOCK_ROWS, -(-hi // BLOCK_ROWS)
        blocks = self.scores[:, first * BLOCK_ROWS : last * BLOCK_ROWS].reshape(len(self.scores), -1, BLOCK_ROWS)
        np.fmax.reduce(blocks, axis=2, out=self.block_best[:, first:last])  # a NaN (no bound) hides no other row

    def cut_reached_by(self, j: int, wanted: int) -> float:
        """A score that at least `wanted` faces reach: the `wanted`-th best block maximum (each of the
        `wanted` blocks holds one), or the `wanted`-th best score when there are fewer blocks."""
        best = self.block_best[j]
        if wanted > len(best):
            scores = self.scores[j]
            return float(np.partition(scores, len(scores) - wanted)[len(scores) - wanted])
        return float(np.partition(best, len(best) - wanted)[len(best) - wanted])

    def reaching(self, j: int, cut: float) -> npt.NDArray[np.intp]:
        """The faces whose score is at least `cut`, in row order."""
        blocks = np.flatnonzero(self.block_best[j] >= cut)
        rows = (blocks[:, None] * BLOCK_ROWS + np.arange(BLOCK_ROWS)).reshape(-1)
        reached: npt.NDArray[np.intp] = rows[self.scores[j, rows] >= cut]
        return reached
