"""One collection's vectors in memory as one float32 matrix, searched exactly (SQLite and memory galleries).

A search is one matrix product, `probes @ vectors.T`, then the best face per subject. The matrix grows
by doubling its capacity (rows past `n` are never read), and a deleted row is overwritten by the last
one and the freed tail zeroed, so a removed vector is gone from memory at once. Searches hold the read
side of a readers-writer lock and writes its write side, so a search never sees a half-moved row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from domain.gallery import SubjectHit

FACE_ID_BYTES = 32  # a face id is 32 hex characters


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
    """The vectors of one collection, their face ids and subjects, in parallel arrays of `n` used rows."""

    def __init__(self, dimension: int, capacity: int = 0) -> None:
        self.dimension = dimension
        self._n = 0
        self._vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._face_ids = np.zeros(capacity, dtype=f"S{FACE_ID_BYTES}")
        self._subject_of = np.zeros(capacity, dtype=np.int32)  # a slot in the subject table
        # The subject table: slot -> external id and face count; free slots are reused.
        self._names: list[str] = []
        self._slots: dict[str, int] = {}
        self._counts = np.zeros(0, dtype=np.int32)
        self._free: list[int] = []
        self._lock = ReadWriteLock()

    def __len__(self) -> int:
        return self._n

    @property
    def subjects(self) -> int:
        return len(self._slots)

    def faces_of(self, external_id: str) -> int:
        slot = self._slots.get(external_id)
        return 0 if slot is None else int(self._counts[slot])

    def has_subject(self, external_id: str) -> bool:
        return external_id in self._slots

    @property
    def nbytes(self) -> int:
        """Memory the arrays hold (capacity, not only used rows)."""
        return int(self._vectors.nbytes + self._face_ids.nbytes + self._subject_of.nbytes + self._counts.nbytes)

    def append(self, face_ids: Sequence[str], subjects: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Add rows; `vectors` is (len(face_ids), dimension) float32."""
        count = len(face_ids)
        if not count:
            return
        ids = np.array(face_ids, dtype=f"S{FACE_ID_BYTES}")
        with self._lock.writing():
            slots = np.fromiter((self._slot(name) for name in subjects), dtype=np.int32, count=count)
            self._reserve(self._n + count)
            end = self._n + count
            self._vectors[self._n : end] = vectors
            self._face_ids[self._n : end] = ids
            self._subject_of[self._n : end] = slots
            np.add.at(self._counts, slots, 1)
            self._n = end

    def remove_face(self, face_id: str) -> bool:
        with self._lock.writing():
            rows = np.flatnonzero(self._face_ids[: self._n] == face_id.encode())
            if not rows.size:
                return False
            self._remove_rows(rows)
            return True

    def remove_subject(self, external_id: str) -> int:
        with self._lock.writing():
            slot = self._slots.get(external_id)
            if slot is None:
                return 0
            rows = np.flatnonzero(self._subject_of[: self._n] == slot)
            self._remove_rows(rows)
            return int(rows.size)

    def clear(self) -> None:
        """Forget every vector, zeroing the memory they held."""
        with self._lock.writing():
            self._vectors[: self._n] = 0
            self._vectors = np.zeros((0, self.dimension), dtype=np.float32)
            self._face_ids = np.zeros(0, dtype=f"S{FACE_ID_BYTES}")
            self._subject_of = np.zeros(0, dtype=np.int32)
            self._n = 0
            self._names, self._slots, self._free = [], {}, []
            self._counts = np.zeros(0, dtype=np.int32)

    def search(
        self, probes: npt.NDArray[np.float32], top_k: int, external_id: str | None = None
    ) -> tuple[list[list[SubjectHit]], int]:
        """Per probe, the `top_k` subjects with the highest cosine (unit vectors: dot product), each with
        its best face; and how many faces were searched. `external_id` restricts it to that subject."""
        with self._lock.reading():
            n = self._n
            if external_id is not None:
                slot = self._slots.get(external_id)
                if slot is None:
                    return [[] for _ in range(len(probes))], 0
                rows = np.flatnonzero(self._subject_of[:n] == slot)
                vectors, face_ids, subject_of = self._vectors[rows], self._face_ids[rows], self._subject_of[rows]
            else:
                vectors, face_ids, subject_of = self._vectors[:n], self._face_ids[:n], self._subject_of[:n]
            if not len(vectors):
                return [[] for _ in range(len(probes))], 0
            scores = probes @ vectors.T  # (q, m)
            most = int(self._counts.max())  # the most faces any subject has
            hits = [best_per_subject(row, face_ids, subject_of, self._names, top_k, most) for row in scores]
            return hits, len(vectors)

    def _slot(self, name: str) -> int:
        slot = self._slots.get(name)
        if slot is not None:
            return slot
        if self._free:
            slot = self._free.pop()
            self._names[slot] = name
        else:
            slot = len(self._names)
            self._names.append(name)
            if slot >= len(self._counts):
                counts = np.zeros(max(16, 2 * len(self._counts)), dtype=np.int32)
                counts[: len(self._counts)] = self._counts
                self._counts = counts
        self._slots[name] = slot
        return slot

    def _reserve(self, rows: int) -> None:
        capacity = len(self._vectors)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 16)
        vectors = np.zeros((capacity, self.dimension), dtype=np.float32)  # pages past n stay untouched
        vectors[: self._n] = self._vectors[: self._n]
        face_ids = np.zeros(capacity, dtype=f"S{FACE_ID_BYTES}")
        face_ids[: self._n] = self._face_ids[: self._n]
        subject_of = np.zeros(capacity, dtype=np.int32)
        subject_of[: self._n] = self._subject_of[: self._n]
        self._vectors, self._face_ids, self._subject_of = vectors, face_ids, subject_of

    def _remove_rows(self, rows: npt.NDArray[np.intp]) -> None:
        """Fill the holes inside the first n - len(rows) rows with the kept rows past that, zero the tail."""
        n = self._n
        keep = n - len(rows)
        removed = np.zeros(n, dtype=bool)
        removed[rows] = True
        slots, freed = np.unique(self._subject_of[rows], return_counts=True)
        holes = rows[rows < keep]
        movers = np.flatnonzero(~removed[keep:]) + keep
        self._vectors[holes] = self._vectors[movers]
        self._face_ids[holes] = self._face_ids[movers]
        self._subject_of[holes] = self._subject_of[movers]
        self._vectors[keep:n] = 0
        self._face_ids[keep:n] = b""
        self._subject_of[keep:n] = 0
        self._n = keep
        for slot, count in zip(slots.tolist(), freed.tolist(), strict=True):
            self._counts[slot] -= count
            if self._counts[slot] == 0:
                del self._slots[self._names[slot]]
                self._names[slot] = ""
                self._free.append(slot)


def best_per_subject(
    scores: npt.NDArray[np.float32],
    face_ids: npt.NDArray[np.bytes_],
    subject_of: npt.NDArray[np.int32],
    names: Sequence[str],
    top_k: int,
    most_faces: int,
) -> list[SubjectHit]:
    """The `top_k` subjects with the best scores, best first, each once with its best face.

    Only the `top_k * most_faces` best faces are looked at: faces scoring above the k-th subject's best
    belong to the k - 1 subjects before it, at most `most_faces` each, so that subject's best face is
    among them. That keeps the work on a million faces to one partial sort (argpartition) of the scores.
    """
    m = len(scores)
    wanted = min(m, top_k * max(1, most_faces))
    candidates = np.argpartition(scores, m - wanted)[m - wanted :] if wanted < m else np.arange(m)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    _, first = np.unique(subject_of[order], return_index=True)
    best = order[np.sort(first)[:top_k]]
    return [SubjectHit(names[int(subject_of[row])], face_ids[row].decode(), float(scores[row])) for row in best]
