"""The matrices' subject table (adapters/stores/subject_table.py): names to slots and back, face counts,
slots reused, names that share a hash, and a freed name's bytes gone from its memory."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.stores import subject_table as table_module
from adapters.stores.subject_table import SubjectTable


def test_names_get_slots_and_keep_them() -> None:
    table = SubjectTable()
    slots = table.slots(["ann", "bob", "ann", "cat", "bob"])
    assert slots.tolist() == [0, 1, 0, 2, 1] and len(table) == 3
    assert [table.name(slot) for slot in range(3)] == ["ann", "bob", "cat"]
    assert table.slots(["cat", "dan"]).tolist() == [2, 3]
    assert table.slot("dan") == 3 and table.slot("eve") is None and table.slot("") is None


def test_face_counts_free_a_slot_at_zero_and_a_new_name_reuses_it() -> None:
    table = SubjectTable()
    slots = table.slots(["ann", "ann", "bob"])
    table.count_faces(slots)
    assert (table.faces_of("ann"), table.faces_of("bob"), table.most_faces()) == (2, 1, 2)
    table.uncount_faces(np.array([0, 1], dtype=np.int32))
    assert table.slot("bob") is None and table.faces_of("bob") == 0 and len(table) == 1
    assert table.faces_of("ann") == 1
    assert table.slots(["cat"]).tolist() == [1]  # bob's slot
    assert table.name(1) == "cat" and table.slot("cat") == 1


def test_a_load_registers_names_first_and_forgets_those_left_without_faces() -> None:
    table = SubjectTable()
    slots = table.add(["ann", "bob", "cat"])
    table.count_faces(slots[[0, 2, 2]])
    table.free_empty()
    assert len(table) == 2 and table.slot("bob") is None and table.faces_of("cat") == 2


def test_names_that_share_a_hash_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "_hash", lambda name: 7)
    monkeypatch.setattr(table_module, "_hashes", lambda names: np.full(len(names), 7, dtype=np.uint32))
    table = SubjectTable()
    assert table.slots(["ann", "bob"]).tolist() == [0, 1]
    assert table.slots(["bob", "cat", "ann"]).tolist() == [1, 2, 0]
    table.free(np.array([1]))
    assert (table.slot("ann"), table.slot("bob"), table.slot("cat")) == (0, None, 2)


def test_a_freed_name_leaves_no_bytes_and_compaction_keeps_the_others() -> None:
    table = SubjectTable()
    names = [f"subject-{i:06d}" for i in range(20_000)]
    slots = table.slots(names)
    table.count_faces(slots)
    table.uncount_faces(slots[:15_000])  # past half of the text: compacted
    text = table._text.tobytes()
    assert b"subject-000001" not in text and b"subject-014999" not in text
    assert all(table.slot(name) == slot for name, slot in zip(names[15_000:], slots[15_000:].tolist(), strict=True))
    assert len(table) == 5_000 and table.slot(names[0]) is None
    assert table.slots(["new"]).tolist() == [0]


def test_growth_zeroes_what_it_leaves_and_clear_forgets_everything() -> None:
    table = SubjectTable()
    table.slots(["first-name"])
    old = table._text
    table.slots([f"n{i}" * 50 for i in range(100)])  # past the first 4 KiB: a new array
    assert table._text is not old and not old.any()
    text = table._text
    table.clear()
    assert not text.any() and len(table) == 0 and table.slot("first-name") is None


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="1 to 65,535 bytes"):
        SubjectTable().slots([""])


def test_offsets_widen_when_the_text_outgrows_them() -> None:
    table = SubjectTable()
    table.slots(["ann"])
    table._start = table._start.astype(np.uint8)  # as uint32 offsets are at 4 GiB of names: here at 255 bytes
    names = [f"subject-{i:04d}" for i in range(40)]  # 520 bytes more
    slots = table.slots(names)
    assert table._start.dtype == np.int64
    assert [table.name(slot) for slot in slots.tolist()] == names and table.name(0) == "ann"
