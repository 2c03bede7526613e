"""The add-faces rule every store applies (domain/additions.py): duplicates by source, subjects made
by their first face, limits refusing a whole batch."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from domain.additions import StoredState, plan_additions
from domain.errors import GalleryLimitExceeded
from domain.gallery import FaceRecord, GalleryLimits

LIMITS = GalleryLimits(
    max_collections=2, max_subjects_per_collection=3, max_faces_per_subject=2, max_faces_per_collection=5
)
EMPTY = StoredState(subjects=0, faces=0, subject_faces={}, by_source={})


def face(external_id: str, source: str) -> FaceRecord:
    return FaceRecord(
        f"{external_id}-{source}".ljust(32, "0"),
        external_id,
        np.ones(4, np.float32),
        None,
        None,
        source,
        datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_new_faces_are_added_and_each_subject_is_created_once() -> None:
    batch = [face("ann", "a1"), face("ann", "a2"), face("bob", "b1")]
    plan = plan_additions("staff", batch, LIMITS, EMPTY)
    assert plan.new_faces == batch
    assert [f.external_id for f in plan.new_subjects] == ["ann", "bob"]
    assert [duplicate for _, duplicate in plan.results] == [False, False, False]


def test_a_source_already_stored_or_repeated_in_the_batch_answers_the_face_kept() -> None:
    stored = face("ann", "a1")
    state = StoredState(subjects=1, faces=1, subject_faces={"ann": 1}, by_source={("ann", "a1"): stored})
    repeat, fresh, fresh_again = face("ann", "a1"), face("bob", "b1"), face("bob", "b1")
    plan = plan_additions("staff", [repeat, fresh, fresh_again], LIMITS, state)
    assert plan.results == [(stored, True), (fresh, False), (fresh, True)]
    assert plan.new_faces == [fresh]
    assert [f.external_id for f in plan.new_subjects] == ["bob"]


def test_the_same_source_for_another_subject_is_another_face() -> None:
    plan = plan_additions("staff", [face("ann", "group"), face("bob", "group")], LIMITS, EMPTY)
    assert len(plan.new_faces) == 2


@pytest.mark.parametrize(
    ("state", "batch", "code"),
    [
        (StoredState(3, 3, {"ann": 1, "bob": 1, "cat": 1}, {}), [face("dan", "d1")], "subject_limit"),
        (StoredState(1, 1, {"ann": 1}, {}), [face("ann", "a2"), face("ann", "a3")], "subject_face_limit"),
        (
            StoredState(3, 4, {"ann": 2, "bob": 1, "cat": 1}, {}),
            [face("bob", "b2"), face("cat", "c2")],
            "collection_face_limit",
        ),
    ],
)
def test_a_batch_that_would_pass_a_limit_is_refused_whole(
    state: StoredState, batch: list[FaceRecord], code: str
) -> None:
    with pytest.raises(GalleryLimitExceeded) as refused:
        plan_additions("staff", batch, LIMITS, state)
    assert refused.value.code == code


def test_duplicates_do_not_count_against_the_limits() -> None:
    stored = face("ann", "a1")
    state = StoredState(subjects=1, faces=2, subject_faces={"ann": 2}, by_source={("ann", "a1"): stored})
    plan = plan_additions("staff", [face("ann", "a1")] * 3, LIMITS, state)
    assert plan.new_faces == [] and all(duplicate for _, duplicate in plan.results)
