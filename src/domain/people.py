"""People: a collection's unlabelled faces grouped into the persons they show. Pure rules, no index.

Two rules, both over a nearest-neighbour graph that a `NeighbourSearch` (domain/ports.py) builds:

- `cluster`, a full pass: DBSCAN* on the kNN graph with HDBSCAN's mutual reachability (an edge
  counts only as much as both faces' own `min_samples`-th neighbours: one stray face cannot chain two
  people together), cut at `link_similarity`, merged strongest edge first (single linkage, Kruskal)
  under cannot-link constraints checked at every merge: two faces of one photo are never one person,
  a "not this person" correction keeps its two faces apart, and named people and people a user shaped
  by hand (a merge, a split: "kept") are fixed anchors (the faces of one anchor start as one group,
  but for a face a correction keeps apart from them; two anchors never merge; other faces may join
  one). A group smaller than `min_size` with no anchor stays unassigned.
- `assign`, incremental: a new face joins the person its nearest faces agree on, or waits.

The numbers in `DEFAULT_RULES` are bench/people.py's (docs/people.md has the evidence and why).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.quality import QualityLevel

UNASSIGNED = -1


@dataclass(frozen=True)
class ClusteringRules:
    link_similarity: float  # two faces link when their mutual-reachability similarity reaches this
    min_samples: int  # a face's core: its similarity to its (min_samples - 1)-th nearest other face
    min_size: int  # faces a person needs (a named person needs none)
    neighbours: int  # the k of the kNN graph
    join_votes: int  # incremental: neighbours of one person, at or above link_similarity, needed to join
    min_quality: QualityLevel = QualityLevel.MEDIUM  # faces below it are left out of people

    def eligible(self, level: QualityLevel | None) -> bool:
        """Whether a face of this quality is grouped (a face with no assessment, from an embedding, is)."""
        return level is None or level.at_least(self.min_quality)


DEFAULT_RULES = ClusteringRules(link_similarity=0.45, min_samples=2, min_size=2, neighbours=16, join_votes=2)


@dataclass(frozen=True)
class Neighbours:
    """Each face's nearest other faces, most similar first: `indices[i, j]` (-1 past the last found) and
    `similarities[i, j]` (cosine)."""

    indices: npt.NDArray[np.int64]
    similarities: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Constraints:
    """What a pass must respect. `photos[i]`: the photo of face i (-1 for none: a face from no photo);
    `anchors[i]`: the fixed person face i belongs to, or -1: a code per subject (a named person) and
    per kept person (one a user merged or split by hand, its subject's code once named); `apart`:
    pairs of faces a correction said are not one person."""

    photos: npt.NDArray[np.int64]
    anchors: npt.NDArray[np.int64]
    apart: Sequence[tuple[int, int]] = ()


def core_similarities(neighbours: Neighbours, min_samples: int) -> npt.NDArray[np.float32]:
    """How close each face's own neighbourhood is: the similarity of its (min_samples - 1)-th nearest
    other face (1 when min_samples is 1; -1 when it has fewer neighbours)."""
    count = len(neighbours.indices)
    if min_samples <= 1:
        return np.ones(count, dtype=np.float32)
    column = min_samples - 2
    if neighbours.similarities.shape[1] <= column:
        return np.full(count, -1.0, dtype=np.float32)
    core = neighbours.similarities[:, column].copy()
    core[neighbours.indices[:, column] < 0] = -1.0
    return core


def linking_edges(
    neighbours: Neighbours, rules: ClusteringRules
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The kNN graph's edges whose mutual-reachability similarity reaches the cut, strongest first."""
    core = core_similarities(neighbours, rules.min_samples)
    count, k = neighbours.indices.shape
    left = np.repeat(np.arange(count, dtype=np.int64), k)
    right = neighbours.indices.reshape(-1)
    weight = neighbours.similarities.reshape(-1)
    kept = (right >= 0) & (right != left)
    left, right, weight = left[kept], right[kept], weight[kept]
    weight = np.minimum(weight, np.minimum(core[left], core[right]))
    kept = weight >= rules.link_similarity
    left, right, weight = left[kept], right[kept], weight[kept]
    order = np.argsort(-weight, kind="stable")
    return left[order], right[order], weight[order]


class _Groups:
    """Union-find whose groups carry what a merge must check: their photos, their anchor, the faces in
    them that a correction names, and the faces those corrections keep out."""

    def __init__(self, constraints: Constraints) -> None:
        count = len(constraints.photos)
        self.parent = list(range(count))
        self.size = [1] * count
        self.photos: list[set[int] | None] = [{int(p)} if p >= 0 else set() for p in constraints.photos]
        self.anchor = [int(a) for a in constraints.anchors]
        named = {i for pair in constraints.apart for i in pair}
        self.members: dict[int, set[int]] = {i: {i} for i in named}
        self.excluded: dict[int, set[int]] = {}
        for a, b in constraints.apart:
            self.excluded.setdefault(a, set()).add(b)
            self.excluded.setdefault(b, set()).add(a)

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def allowed(self, a: int, b: int) -> bool:
        if self.anchor[a] >= 0 and self.anchor[b] >= 0 and self.anchor[a] != self.anchor[b]:
            return False
        photos_a, photos_b = self.photos[a], self.photos[b]
        assert photos_a is not None and photos_b is not None
        small, large = (photos_a, photos_b) if len(photos_a) <= len(photos_b) else (photos_b, photos_a)
        if not small.isdisjoint(large):
            return False
        return not self.kept_apart(a, b)

    def kept_apart(self, a: int, b: int) -> bool:
        """Whether a correction keeps a face of group a apart from a face of group b (roots)."""
        excluded_a, excluded_b = self.excluded.get(a), self.excluded.get(b)
        if excluded_a and not excluded_a.isdisjoint(self.members.get(b, ())):
            return True
        return bool(excluded_b and not excluded_b.isdisjoint(self.members.get(a, ())))

    def union(self, a: int, b: int) -> None:
        """Merge the groups rooted at a and b (the caller checked `allowed`)."""
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        photos_a, photos_b = self.photos[a], self.photos[b]
        assert photos_a is not None and photos_b is not None
        photos_a |= photos_b
        self.photos[b] = None
        if self.anchor[a] < 0:
            self.anchor[a] = self.anchor[b]
        for table in (self.members, self.excluded):
            if b in table:
                table.setdefault(a, set()).update(table.pop(b))

    def try_union(self, a: int, b: int) -> bool:
        a, b = self.root(a), self.root(b)
        if a == b or not self.allowed(a, b):
            return False
        self.union(a, b)
        return True


def cluster(neighbours: Neighbours, constraints: Constraints, rules: ClusteringRules) -> npt.NDArray[np.int64]:
    """Every face's person: 0, 1, ... in order of each person's first face, or UNASSIGNED."""
    count = len(constraints.photos)
    groups = _Groups(constraints)
    starts: dict[int, list[int]] = {}  # each subject's starting groups (a face of each)
    for i, anchor in enumerate(constraints.anchors.tolist()):
        if anchor >= 0:
            # One subject's faces start as one group, even two of one photo: a person said so. But
            # not a face a correction keeps apart from the group's: the correction came later (the
            # service unlabels a photo face it refuses; this holds for one labelled again after).
            # Such a face joins another start of the subject it is not kept from, or starts one.
            own = starts.setdefault(anchor, [])
            for start in own:
                a, b = groups.root(start), groups.root(i)
                if not groups.kept_apart(a, b):
                    groups.union(a, b)
                    break
            else:
                own.append(i)
    left, right, _ = linking_edges(neighbours, rules)
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        groups.try_union(a, b)
    labels = np.full(count, UNASSIGNED, dtype=np.int64)
    numbers: dict[int, int] = {}
    for i in range(count):
        root = groups.root(i)
        if groups.size[root] < rules.min_size and groups.anchor[root] < 0:
            continue
        labels[i] = numbers.setdefault(root, len(numbers))
    return labels


@dataclass(frozen=True)
class Candidate:
    """One of a new face's nearest faces: how similar, and whose (UNASSIGNED: nobody's yet)."""

    similarity: float
    person: int


def assign(candidates: Iterable[Candidate], refused: Iterable[int], rules: ClusteringRules) -> int:
    """The person a new face joins, or UNASSIGNED (it waits for the next pass).

    It joins person P when at least `join_votes` of its nearest faces at or above `link_similarity`
    are P's and none there is another person's (precision first: a face between two people waits),
    unless P is `refused`: a person holding another face of the same photo, or one a correction said
    this face is not."""
    votes: dict[int, int] = {}
    for candidate in candidates:
        if candidate.similarity >= rules.link_similarity and candidate.person != UNASSIGNED:
            votes[candidate.person] = votes.get(candidate.person, 0) + 1
    if len(votes) != 1:
        return UNASSIGNED
    ((person, count),) = votes.items()
    if count < rules.join_votes or person in set(refused):
        return UNASSIGNED
    return person


def assign_photo(
    candidates: Sequence[Sequence[Candidate]], refused: Sequence[Iterable[int]], rules: ClusteringRules
) -> list[int]:
    """`assign` for each face of one new photo (its candidates and the people it may not join), in the
    order given: a person one face of the photo joined is refused to the others, so two faces of one
    photo never join one person."""
    taken: set[int] = set()
    people = []
    for found, not_these in zip(candidates, refused, strict=True):
        person = assign(found, taken.union(not_these), rules)
        if person != UNASSIGNED:
            taken.add(person)
        people.append(person)
    return people
