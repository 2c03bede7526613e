"""domain/people.py: the pass's constraints and the incremental rule, on hand-made vectors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from domain.people import (
    UNASSIGNED,
    Candidate,
    ClusteringRules,
    Constraints,
    Neighbours,
    assign,
    assign_photo,
    cluster,
    core_similarities,
)
from domain.quality import QualityLevel

RULES = ClusteringRules(link_similarity=0.5, min_samples=2, min_size=2, neighbours=8, join_votes=2)


def unit(rows: list[list[float]]) -> npt.NDArray[np.float32]:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def graph(vectors: npt.NDArray[np.float32], k: int = 8) -> Neighbours:
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    k = min(k, len(vectors) - 1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return Neighbours(order.astype(np.int64), np.take_along_axis(scores, order, axis=1).astype(np.float32))


def people_of(vectors, photos, anchors=None, apart=(), rules=RULES):
    count = len(vectors)
    constraints = Constraints(
        photos=np.asarray(photos, dtype=np.int64),
        anchors=np.asarray(anchors if anchors is not None else [-1] * count, dtype=np.int64),
        apart=apart,
    )
    return cluster(graph(vectors), constraints, rules).tolist()


def around(direction: int, count: int, spread: float = 0.3, seed: int = 0, dimension: int = 16) -> list[list[float]]:
    """`count` vectors near the axis `direction`: cosine with one another about 1 / (1 + spread^2)."""
    rng = np.random.default_rng(seed + direction)
    axis = np.zeros(dimension)
    axis[direction] = 1
    return (axis + spread * rng.standard_normal((count, dimension)) / np.sqrt(dimension)).tolist()


def test_two_groups_of_distinct_photos_are_two_people() -> None:
    vectors = unit(around(0, 4) + around(1, 3))
    labels = people_of(vectors, photos=range(7))
    assert labels == [0, 0, 0, 0, 1, 1, 1]


def test_two_faces_of_one_photo_are_never_one_person() -> None:
    vectors = unit(around(0, 4))
    labels = people_of(vectors, photos=[0, 0, 1, 2])  # faces 0 and 1 are in one photo
    assert labels[0] != labels[1]
    assert UNASSIGNED not in labels or labels.count(UNASSIGNED) <= 1
    # Faces of no photo (enrolled from an embedding) carry no such constraint.
    assert len(set(people_of(vectors, photos=[-1, -1, -1, -1]))) == 1


def test_not_this_person_keeps_two_faces_apart() -> None:
    vectors = unit(around(0, 6))
    labels = people_of(vectors, photos=range(6), apart=[(0, 5)])
    assert labels[0] != labels[5]
    assert len(set(people_of(vectors, photos=range(6)))) == 1  # without the correction: one person


def test_named_people_are_fixed_anchors() -> None:
    near = unit(around(0, 4))
    # Faces 0 and 1 are named as two different subjects: however alike, two people.
    labels = people_of(near, photos=range(4), anchors=[7, 8, -1, -1])
    assert labels[0] != labels[1]
    assert UNASSIGNED not in labels
    # One subject's faces start together, even when far apart and of one photo.
    apart = unit(around(0, 1) + around(1, 1))
    assert people_of(apart, photos=[3, 3], anchors=[5, 5]) == [0, 0]
    # A lone named face is a person; a lone unnamed one is not.
    assert people_of(apart, photos=[0, 1], anchors=[5, -1]) == [0, UNASSIGNED]


def test_a_correction_keeps_a_face_apart_from_its_own_subject() -> None:
    """A face labelled to the subject again after a "not this person" (or refused before the service
    unlabelled refused faces): the correction wins over the subject's starting group, and the edges
    never bring it back; the subject's other faces stay one person."""
    near = unit(around(0, 5))
    labels = people_of(near, photos=range(5), anchors=[4, 4, 4, 4, 4], apart=[(0, 4), (1, 4), (2, 4), (3, 4)])
    assert labels[:4] == [0, 0, 0, 0]
    assert labels[4] not in (0, UNASSIGNED)  # still a named person, of its own
    # The unlabelled face a correction refused never joins the named person through the edges.
    labels = people_of(near, photos=range(5), anchors=[4, 4, 4, 4, -1], apart=[(0, 4), (1, 4), (2, 4), (3, 4)])
    assert labels[:4] == [0, 0, 0, 0]
    assert labels[4] == UNASSIGNED
    # Without the correction, the same faces are one person.
    assert people_of(near, photos=range(5), anchors=[4, 4, 4, 4, 4]) == [0] * 5
    # The refused face first, the subject's other faces far apart (no edge links them): they still
    # start as one group, without it.
    far = unit(around(0, 1) + around(1, 1) + around(2, 1) + around(3, 1))
    labels = people_of(far, photos=range(4), anchors=[4, 4, 4, 4], apart=[(0, 1), (0, 2), (0, 3)])
    assert labels == [0, 1, 1, 1]


def test_unlike_faces_stay_unassigned() -> None:
    vectors = unit(around(0, 3) + around(5, 1) + around(9, 1))
    assert people_of(vectors, photos=range(5)) == [0, 0, 0, UNASSIGNED, UNASSIGNED]


def test_mutual_reachability_needs_a_neighbourhood() -> None:
    """A pair alike only to each other links with min_samples 2 (its core is the other face) but not
    with 3 (the core is the second nearest face, far away)."""
    vectors = unit(around(0, 2, spread=0.1) + around(4, 3) + around(8, 3))
    pair = people_of(vectors, photos=range(8))
    assert pair[0] == pair[1] != UNASSIGNED
    strict = ClusteringRules(0.5, min_samples=3, min_size=2, neighbours=8, join_votes=2)
    assert people_of(vectors, photos=range(8), rules=strict)[:2] == [UNASSIGNED, UNASSIGNED]
    core = core_similarities(graph(vectors), 3)
    assert core[0] < 0.5 < core[3]


def test_a_pass_is_the_same_whatever_the_order_of_faces() -> None:
    vectors = unit(around(0, 5) + around(1, 5) + around(2, 1))
    photos = list(range(11))
    labels = people_of(vectors, photos)
    order = np.random.default_rng(3).permutation(11)
    shuffled = people_of(vectors[order], [photos[i] for i in order])
    # Same partition (labels are numbered by first face, so compare who is with whom).
    same = {(a, b) for a in range(11) for b in range(11) if labels[a] == labels[b] != UNASSIGNED}
    same_shuffled = {
        (int(order[a]), int(order[b])) for a in range(11) for b in range(11) if shuffled[a] == shuffled[b] != UNASSIGNED
    }
    assert same == same_shuffled


@pytest.mark.parametrize(
    ("candidates", "refused", "expected"),
    [
        ([Candidate(0.7, 3), Candidate(0.6, 3), Candidate(0.2, 1)], (), 3),  # two votes: joins
        ([Candidate(0.7, 3), Candidate(0.3, 3)], (), UNASSIGNED),  # one vote above the link: waits
        ([Candidate(0.7, 3), Candidate(0.6, 3), Candidate(0.55, 4)], (), UNASSIGNED),  # between two people
        ([Candidate(0.7, 3), Candidate(0.6, 3)], (3,), UNASSIGNED),  # same photo / not this person
        ([Candidate(0.9, UNASSIGNED), Candidate(0.8, UNASSIGNED)], (), UNASSIGNED),  # nobody yet
        ([], (), UNASSIGNED),
    ],
)
def test_a_new_face_joins_only_where_its_neighbours_agree(candidates, refused, expected) -> None:
    assert assign(candidates, refused, RULES) == expected


def test_faces_below_the_quality_floor_are_not_grouped() -> None:
    assert RULES.min_quality is QualityLevel.MEDIUM
    assert RULES.eligible(QualityLevel.HIGH) and RULES.eligible(QualityLevel.MEDIUM)
    assert not RULES.eligible(QualityLevel.LOW)
    assert RULES.eligible(None)  # enrolled from an embedding: nothing to judge by


def test_two_faces_of_one_new_photo_never_join_one_person() -> None:
    both_like_3 = [Candidate(0.8, 3), Candidate(0.7, 3)]
    assert assign_photo([both_like_3, both_like_3], [(), ()], RULES) == [3, UNASSIGNED]
    # A face refused a person (a correction) waits; the next face of the photo may still join it.
    assert assign_photo([both_like_3, both_like_3], [(3,), ()], RULES) == [UNASSIGNED, 3]


def test_kept_people_stay_whole_and_apart() -> None:
    """A person a user merged or split by hand is an anchor of its own (domain/use_cases/people.py
    gives each kept person a code): its faces start as one group however unlike, two kept people
    never merge however alike, and other faces still join one through the edges."""
    # A merge of two unlike looks (axes 0 and 1) stays one person; the others near axis 0 join it.
    vectors = unit(around(0, 1) + around(1, 1) + around(0, 3, seed=5))
    assert people_of(vectors, photos=range(5), anchors=[9, 9, -1, -1, -1]) == [0, 0, 0, 0, 0]
    assert people_of(vectors, photos=range(5)) == [0, UNASSIGNED, 0, 0, 0]  # not kept: the merge undone
    # A split of one look into two kept people: two people, each joined by none of the other's faces.
    alike = unit(around(0, 6))
    labels = people_of(alike, photos=range(6), anchors=[9, 9, 9, 10, 10, 10])
    assert labels == [0, 0, 0, 1, 1, 1]
    assert people_of(alike, photos=range(6)) == [0] * 6  # not kept: the split undone
    # A kept person and a named one (another anchor) never merge either; a free face joins one of them.
    labels = people_of(alike, photos=range(6), anchors=[9, 9, 3, 3, -1, -1])
    assert labels[0] == labels[1] != labels[2] == labels[3] and UNASSIGNED not in labels
