"""The people use cases (domain/use_cases/people.py) on the memory store with the exact kNN graph: a
full pass groups a collection's photo faces into people (two faces of one photo never one person,
a subject's faces one person), a new photo's faces join the person their neighbours agree on,
"not this person" outlives a re-cluster, split and merge, and a person's photos."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from adapters.people.neighbours import FaissNeighbours
from adapters.stores.memory import MemoryGallery
from domain.errors import CorrectionsKeptArriving, FaceNotFound, InvalidInput
from domain.gallery import FaceRecord, GalleryLimits, PhotoInfo, StoredQuality
from domain.people import Neighbours
from domain.quality import QualityLevel
from domain.use_cases.collections import CollectionRules
from domain.use_cases.people import MAX_STORE_TRIES, People

RULES = CollectionRules(default_threshold=0.5, default_top_k=3, max_top_k=10, max_page=50)
LIMITS = GalleryLimits(
    max_collections=5, max_subjects_per_collection=100, max_faces_per_subject=50, max_faces_per_collection=1000
)
DIM = 64
T = datetime(2026, 3, 1, tzinfo=UTC)
GOOD = StoredQuality(QualityLevel.HIGH, 0.9, ())
POOR = StoredQuality(QualityLevel.LOW, 0.2, ())
BOX = (0.0, 0.0, 50.0, 50.0)


class World:
    """A memory gallery whose people are a few random identities, each face its centre plus noise."""

    def __init__(self, identities: int = 3, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        centres = self.rng.standard_normal((identities, DIM))
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.gallery = MemoryGallery(LIMITS)
        self.gallery.create_collection("c", "m:1", DIM, 0.3)
        self.people = People(self.gallery, self.gallery, FaissNeighbours(), RULES)
        self.truth: dict[str, int] = {}  # face id -> identity

    def vector(self, identity: int) -> np.ndarray:
        noisy = self.centres[identity] + 0.25 * self.rng.standard_normal(DIM) / np.sqrt(DIM)
        return (noisy / np.linalg.norm(noisy)).astype(np.float32)

    def photo(self, photo_id: str, identities: list[int], quality: StoredQuality = GOOD) -> list[FaceRecord]:
        digest = uuid.uuid4().hex * 2
        faces = [
            FaceRecord(
                uuid.uuid4().hex, None, self.vector(i), (0.0, 0.0, 50.0, 50.0), 0.9, digest, T, None, quality, photo_id
            )
            for i in identities
        ]
        _, stored, _ = self.gallery.add_photo("c", PhotoInfo(photo_id, digest, len(faces), T), faces)
        self.truth.update({face.face_id: i for face, i in zip(stored, identities, strict=True)})
        return stored

    def groups(self) -> list[set[int]]:
        """Each person's identities (one each when the grouping is right)."""
        people = self.gallery.people("c", None, 50)
        return [{self.truth[f.face_id] for f in self.gallery.person("c", p.person_id)[1]} for p in people]


def test_a_full_pass_groups_faces_by_identity_and_never_two_of_one_photo() -> None:
    world = World()
    for n in range(4):
        world.photo(f"p{n}", [0, 1])  # identities 0 and 1 side by side, four times
    world.photo("q", [2])  # identity 2 once: too few faces for a person
    outcome = world.people.recluster("c")
    assert outcome.faces == 9 and outcome.people == 2 and outcome.assigned == 8
    assert sorted(map(sorted, world.groups())) == [[0], [1]]
    for person in world.gallery.people("c", None, 50):
        _, faces = world.gallery.person("c", person.person_id)
        assert len({f.photo_id for f in faces}) == len(faces) == 4


def test_poor_faces_are_left_out_and_a_subject_anchors_its_faces() -> None:
    world = World()
    for n in range(3):
        world.photo(f"p{n}", [0])
    poor = world.photo("poor", [0], quality=POOR)
    # Two faces of identity 1 enrolled as subject "bob" (no photo), and one of identity 0 as "ann".
    bob = [
        world.gallery.add_face("c", FaceRecord(uuid.uuid4().hex, "bob", world.vector(1), BOX, 0.9, d, T))[0]
        for d in ("d1", "d2")
    ]
    ann, _ = world.gallery.add_face("c", FaceRecord(uuid.uuid4().hex, "ann", world.vector(0), BOX, 0.9, "d3", T))
    outcome = world.people.recluster("c")
    members = world.gallery.memberships("c")
    assert outcome.grouped == 6 and poor[0].face_id not in members
    assert members[bob[0].face_id] == members[bob[1].face_id]  # one subject, one person
    assert members[ann.face_id] not in (members[bob[0].face_id], None)
    photo_faces = [f for f, i in world.truth.items() if i == 0 and f != poor[0].face_id]
    assert {members[f] for f in photo_faces} == {members[ann.face_id]}  # the photos' faces joined ann


def test_a_new_photo_joins_the_person_its_neighbours_agree_on() -> None:
    world = World()
    for n in range(3):
        world.photo(f"p{n}", [0, 1])
    world.people.recluster("c")
    before = world.gallery.memberships("c")
    new = world.photo("new", [1, 0, 2])
    joined = world.people.assign_new("c", new)
    person_of_identity = {world.truth[f]: p for f, p in before.items()}
    assert joined == [person_of_identity[1], person_of_identity[0], None]  # identity 2 has nobody yet


def test_not_this_person_outlives_a_recluster() -> None:
    world = World(identities=1)
    faces = [world.photo(f"p{n}", [0])[0] for n in range(4)]
    world.people.recluster("c")
    (person,) = world.gallery.people("c", None, 5)
    left = world.people.refuse("c", person.person_id, faces[3].face_id)
    assert left is not None and left.faces == 3
    world.people.recluster("c")
    members = world.gallery.memberships("c")
    assert faces[3].face_id not in members and members[faces[0].face_id] == person.person_id


def test_split_merge_and_photos_of_a_person() -> None:
    world = World(identities=1)
    faces = [world.photo(f"p{n}", [0])[0] for n in range(4)]
    world.people.recluster("c")
    (person,) = world.gallery.people("c", None, 5)
    split = world.people.split("c", person.person_id, [faces[2].face_id, faces[3].face_id])
    assert split.faces == 2 and world.people.get("c", person.person_id)[0].faces == 2
    with pytest.raises(FaceNotFound):
        world.people.split("c", person.person_id, [faces[2].face_id])
    with pytest.raises(InvalidInput):  # the person would be left empty
        world.people.split("c", person.person_id, [faces[0].face_id, faces[1].face_id])
    merged = world.people.merge("c", person.person_id, split.person_id)
    assert merged.faces == 4
    _, photos = world.people.photos("c", person.person_id)
    assert [p.photo_id for p in photos] == ["p0", "p1", "p2", "p3"]
    assert [p.faces[0].face_id for p in photos] == [f.face_id for f in faces]
    with pytest.raises(InvalidInput):
        world.people.get("c", "not-a-person-id")


def test_a_merge_and_a_split_outlive_a_recluster() -> None:
    """People a user merged or split by hand are kept: a re-cluster neither splits the merged person
    again nor puts the split faces back, keeps their ids, and new faces still join them."""
    world = World(identities=2)
    for n in range(3):
        world.photo(f"p{n}", [0, 1])
    world.people.recluster("c")
    one, two = world.gallery.people("c", None, 5)
    merged = world.people.merge("c", one.person_id, two.person_id)  # two identities, one person by hand
    world.photo("p3", [0])  # a face the edges bring to it
    world.people.recluster("c")
    assert [p.person_id for p in world.gallery.people("c", None, 5)] == [merged.person_id]
    assert merged.person_id == one.person_id and world.gallery.person("c", one.person_id)[0].faces == 7

    world = World(identities=1)
    faces = [world.photo(f"p{n}", [0])[0] for n in range(6)]
    world.people.recluster("c")
    (person,) = world.gallery.people("c", None, 5)
    split = world.people.split("c", person.person_id, [faces[4].face_id, faces[5].face_id])
    world.people.recluster("c")
    members = world.gallery.memberships("c")
    assert {members[f.face_id] for f in faces[:4]} == {person.person_id}
    assert {members[f.face_id] for f in faces[4:]} == {split.person_id}
    # The same look, not kept: one re-cluster puts the faces back together.
    world.gallery.replace_people("c", [], set())
    world.people.recluster("c")
    assert len(set(world.gallery.memberships("c").values())) == 1


def test_an_unnamed_person_merged_into_a_named_one_stays_with_it() -> None:
    """A kept person named to a subject is that subject's anchor: its unlabelled faces stay with it."""
    world = World(identities=2)
    ann, _ = world.gallery.add_face("c", FaceRecord(uuid.uuid4().hex, "ann", world.vector(0), BOX, 0.9, "d1", T))
    for n in range(3):
        world.photo(f"p{n}", [1])  # another look, unnamed
    world.people.recluster("c")
    named = world.gallery.people_of("c", [ann.face_id])[ann.face_id]
    (other,) = {p.person_id for p in world.gallery.people("c", None, 5)} - {named}
    world.people.merge("c", named, other)
    world.people.recluster("c")
    assert world.gallery.memberships("c") == {f.face_id: named for f in world.gallery.faces("c")}


class CorrectedWhileBuilt:
    """The exact kNN graph, with a correction made while it is built (as a user would during the
    seconds a large collection's graph takes): the race a pass must not lose, made deterministic."""

    def __init__(self, correction: Callable[[], object]) -> None:
        self.correction = correction
        self.built = 0

    def neighbours(self, vectors: np.ndarray, k: int) -> Neighbours:
        self.built += 1
        self.correction()
        return FaissNeighbours().neighbours(vectors, k)


def recluster_with(world: World, correction: Callable[[], object]) -> tuple[CorrectedWhileBuilt, list[str]]:
    """A pass with `correction` made while its graph is built; the graph and the stages it went through."""
    graph = CorrectedWhileBuilt(correction)
    stages: list[str] = []
    People(world.gallery, world.gallery, graph, RULES).recluster("c", lambda stage, done: stages.append(stage))
    return graph, stages


def test_a_merge_made_while_a_pass_runs_is_kept() -> None:
    """The pass read its constraints before the merge: it groups its graph again rather than store
    groups that split the merged person (the graph is built once)."""
    world = World(identities=2)
    for n in range(3):
        world.photo(f"p{n}", [0, 1])
    world.people.recluster("c")
    one, two = world.gallery.people("c", None, 5)
    graph, stages = recluster_with(world, lambda: world.people.merge("c", one.person_id, two.person_id))
    assert graph.built == 1 and stages.count("grouping") == 2
    (person,) = world.gallery.people("c", None, 5)
    assert person.person_id == one.person_id and person.faces == 6 and person.kept


def test_a_split_and_a_not_this_person_made_while_a_pass_runs_are_kept() -> None:
    world = World(identities=1)
    faces = [world.photo(f"p{n}", [0])[0] for n in range(7)]
    world.people.recluster("c")
    (person,) = world.gallery.people("c", None, 5)

    def correct() -> None:
        world.people.split("c", person.person_id, [faces[4].face_id, faces[5].face_id])
        world.people.refuse("c", person.person_id, faces[6].face_id)

    recluster_with(world, correct)
    members = world.gallery.memberships("c")
    split = members[faces[4].face_id]
    assert {members[f.face_id] for f in faces[:4]} == {person.person_id} and split != person.person_id
    assert members[faces[5].face_id] == split
    assert members.get(faces[6].face_id) != person.person_id  # refused: apart from the person's faces


def test_a_name_or_a_delete_made_while_a_pass_runs_is_kept() -> None:
    world = World(identities=2)
    for n in range(3):
        world.photo(f"p{n}", [0, 1])
    world.people.recluster("c")
    one, two = world.gallery.people("c", None, 5)
    _, stages = recluster_with(world, lambda: world.people.name("c", one.person_id, "ann"))
    assert stages.count("grouping") == 2  # the labels read again: the named faces are ann's anchor
    assert world.gallery.person("c", one.person_id)[0].faces == 3
    assert {f.external_id for f in world.gallery.person("c", one.person_id)[1]} == {"ann"}
    recluster_with(world, lambda: world.people.delete("c", two.person_id))
    assert [p.person_id for p in world.gallery.people("c", None, 5)] == [one.person_id]
    assert len(list(world.gallery.faces("c"))) == 3


def test_a_pass_gives_up_when_corrections_keep_arriving() -> None:
    """A correction before every store: the pass stores nothing (the last correction stands) and
    fails saying why, after a bounded number of tries; a correction before one store only costs a try."""
    world = World(identities=1)
    faces = [world.photo(f"p{n}", [0])[0] for n in range(4)]
    world.people.recluster("c")
    (person,) = world.gallery.people("c", None, 5)
    split = world.people.split("c", person.person_id, [faces[3].face_id])
    moves = 0

    def correct(stage: str, done: float) -> None:
        nonlocal moves
        if stage == "storing":  # one face back and forth between the two people
            moves += 1
            world.gallery.move_faces("c", [faces[2].face_id], split.person_id if moves % 2 else person.person_id)

    with pytest.raises(CorrectionsKeptArriving, match="corrections kept arriving"):
        world.people.recluster("c", correct)
    assert moves == MAX_STORE_TRIES
    assert world.gallery.memberships("c") == {
        **{f.face_id: person.person_id for f in faces[:2]},
        faces[2].face_id: split.person_id,  # the last move's: odd
        faces[3].face_id: split.person_id,
    }

    moves = MAX_STORE_TRIES - 1  # one more move (odd: to the split person), then none
    outcome = world.people.recluster("c", lambda stage, done: correct(stage, done) if moves < MAX_STORE_TRIES else None)
    assert outcome.people == 2 and moves == MAX_STORE_TRIES
    assert world.gallery.memberships("c")[faces[2].face_id] == split.person_id
