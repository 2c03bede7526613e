"""The names a matrix groups its rows by (subjects' external ids, or photos' ids), numbered by slot, with
each slot's face count: in a few numpy arrays, not Python objects per name.

At a million faces (200,000 subjects) a dict of names and a list of their strings took ~200 B per
subject, 40 B per face: more than the 16 B per face a matrix row has left under 2.6 KB. Here a name
costs its UTF-8 bytes and 18 more (`nbytes`):

- `_text`: every name's bytes end to end; `_start` and `_length` say where each slot's name is (a
  length of 0: a free slot, reused by the next new name).
- `_hashes` and `_order`: the live names' `hash()` (Python's keyed SipHash: callers cannot make names
  collide on purpose), its low 32 bits, sorted, and their slots in that order. A look-up is a binary
  search of the hash and a comparison of the names it finds (different names may share a hash: a few
  pairs among 200,000 names).
- `_counts`: each slot's faces.

A freed name's bytes are zeroed at once, and `_text` is compacted when freed space passes half of
it; an array replaced by a larger one is zeroed first, so no name outlives its subject in memory.
Callers serialize writes (the matrix's lock).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_Slots = npt.NDArray[np.int32]


class SubjectTable:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._text = np.zeros(0, dtype=np.uint8)
        self._text_used = 0  # bytes of `_text` written (live names and zeroed freed ones)
        self._text_freed = 0
        self._start = np.zeros(0, dtype=np.uint32)  # int64 once the text passes 4 GiB
        self._length = np.zeros(0, dtype=np.uint16)
        self._counts = np.zeros(0, dtype=np.int32)
        self._slots = 0  # slots handed out (live and free): [0, _slots) of the per-slot arrays
        self._hashes = np.zeros(0, dtype=np.uint32)
        self._order = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        """Live names."""
        return len(self._order)

    @property
    def nbytes(self) -> int:
        arrays = (self._text, self._start, self._length, self._counts, self._hashes, self._order)
        return sum(int(array.nbytes) for array in arrays)

    @property
    def counts(self) -> npt.NDArray[np.int32]:
        """Faces per slot (0 for a free slot), for slots [0, slots handed out)."""
        return self._counts[: self._slots]

    def most_faces(self) -> int:
        return int(self.counts.max()) if self._slots else 0

    def name(self, slot: int) -> str:
        start = int(self._start[slot])
        return self._text[start : start + int(self._length[slot])].tobytes().decode()

    def slot(self, name: str) -> int | None:
        """The name's slot, or None."""
        key = _hash(name)
        lo = int(np.searchsorted(self._hashes, key, side="left"))
        hi = int(np.searchsorted(self._hashes, key, side="right"))
        for slot in self._order[lo:hi].tolist():
            if self.name(slot) == name:
                return int(slot)
        return None

    def faces_of(self, name: str) -> int:
        slot = self.slot(name)
        return 0 if slot is None else int(self._counts[slot])

    def slots(self, names: Sequence[str]) -> _Slots:
        """Each name's slot (a name may come many times), new names given one."""
        unique = list(dict.fromkeys(names))
        hashes = _hashes(unique)
        at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        known = (self._hashes[at] == hashes).tolist() if len(self) else [False] * len(unique)
        found = [self.slot(name) if hit else None for name, hit in zip(unique, known, strict=True)]
        new = [name for name, slot in zip(unique, found, strict=True) if slot is None]
        created = iter(self.add(new).tolist())
        slot_of = {name: next(created) if slot is None else slot for name, slot in zip(unique, found, strict=True)}
        return np.fromiter(map(slot_of.__getitem__, names), dtype=np.int32, count=len(names))

    def add(self, names: Sequence[str]) -> _Slots:
        """Slots for names not in the table yet (distinct): free slots first, then new ones."""
        count = len(names)
        if not count:
            return np.zeros(0, dtype=np.int32)
        encoded = [name.encode() for name in names]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=count)
        if not lengths.all() or lengths.max() > np.iinfo(np.uint16).max:
            raise ValueError("a name is 1 to 65,535 bytes")
        free = np.flatnonzero(self._length[: self._slots] == 0)[:count].astype(np.int32)
        fresh = np.arange(self._slots, self._slots + count - len(free), dtype=np.int32)
        slots = np.concatenate([free, fresh])
        self._reserve_slots(self._slots + len(fresh))
        self._slots += len(fresh)
        start = self._append_text(b"".join(encoded))
        self._start[slots] = start + np.cumsum(lengths) - lengths
        self._length[slots] = lengths
        self._counts[slots] = 0
        self._index(_hashes(names), slots)
        return slots

    def count_faces(self, slots: _Slots) -> None:
        """Faces added to these slots (one per entry)."""
        np.add.at(self._counts, slots, 1)

    def uncount_faces(self, slots: _Slots) -> None:
        """Faces removed from these slots (one per entry); a slot left with none is freed."""
        emptied, removed = np.unique(slots, return_counts=True)
        self._counts[emptied] -= removed.astype(np.int32)
        self.free(emptied[self._counts[emptied] == 0])

    def free(self, slots: npt.NDArray[np.integer]) -> None:
        """Forget these slots' names (their bytes zeroed) and face counts."""
        slots = np.unique(slots[self._length[slots] > 0])
        if not len(slots):
            return
        for slot in slots.tolist():
            start = int(self._start[slot])
            self._text[start : start + int(self._length[slot])] = 0
        self._text_freed += int(self._length[slots].sum())
        self._length[slots] = 0
        self._counts[slots] = 0
        kept = ~np.isin(self._order, slots)
        self._hashes, self._order = self._hashes[kept], self._order[kept]
        if self._text_freed > max(self._text_used // 2, 1 << 16):
            self._compact_text()

    def free_empty(self) -> None:
        """Forget the names that have no face (a load registers every name first)."""
        self.free(np.flatnonzero((self.counts == 0) & (self._length[: self._slots] > 0)))

    def clear(self) -> None:
        self._text[: self._text_used] = 0
        self._reset()

    # --- inside

    def _index(self, hashes: npt.NDArray[np.uint32], slots: _Slots) -> None:
        order = np.argsort(hashes, kind="stable")
        hashes, slots = hashes[order], slots[order]
        at = np.searchsorted(self._hashes, hashes)
        self._hashes = np.insert(self._hashes, at, hashes)
        self._order = np.insert(self._order, at, slots)

    def _reserve_slots(self, slots: int) -> None:
        if slots <= len(self._start):
            return
        capacity = max(slots, 2 * len(self._start), 16)
        used = self._slots
        for attribute in ("_start", "_length", "_counts"):
            old = getattr(self, attribute)
            new = np.zeros(capacity, dtype=old.dtype)
            new[:used] = old[:used]
            setattr(self, attribute, new)

    def _append_text(self, data: bytes) -> int:
        start = self._text_used
        end = start + len(data)
        if end > np.iinfo(self._start.dtype).max:
            self._start = self._start.astype(np.int64)
        if end > len(self._text):
            self._replace_text(max(end, 2 * len(self._text), 1 << 12), self._text[:start])
        self._text[start:end] = np.frombuffer(data, dtype=np.uint8)
        self._text_used = end
        return start

    def _compact_text(self) -> None:
        """Live names moved together, in slot order; the freed bytes dropped."""
        live = np.flatnonzero(self._length[: self._slots] > 0)
        lengths = self._length[live].astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        # Every byte's place in the old text, name by name (one gather, no loop per name).
        offsets = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
        kept = self._text[np.repeat(self._start[live], lengths) + offsets]
        self._replace_text(max(len(kept), 1 << 12), kept)
        self._start[live] = starts
        self._text_used, self._text_freed = len(kept), 0

    def _replace_text(self, capacity: int, content: npt.NDArray[np.uint8]) -> None:
        text = np.zeros(capacity, dtype=np.uint8)
        text[: len(content)] = content
        self._text[:] = 0  # the old array goes with its last reference: no name left in what it held
        self._text = text


def _hash(name: str) -> int:
    return hash(name) & 0xFFFF_FFFF


def _hashes(names: Sequence[str]) -> npt.NDArray[np.uint32]:
    return np.fromiter(map(hash, names), dtype=np.int64, count=len(names)).astype(np.uint32)  # the low 32 bits
