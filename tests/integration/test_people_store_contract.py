"""People in the PeopleStore port, on every store (memory, SQLite, PostgreSQL): faces moved into
people, merged, refused ("not this person", kept as face pairs), a full pass's groups replacing the
people while keeping their ids; deleting a face, a photo or a subject takes its faces out of people
and a person left empty goes; deleting a person forgets its faces everywhere; what is stored survives
a reopen."""
# ruff: noqa: F811 (the contract suite's fixtures, imported, are this module's test arguments)

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np
import psycopg
import pytest

from domain.errors import (
    EnrolledFaceRefused,
    FaceNotFound,
    GalleryLimitExceeded,
    InvalidInput,
    PeopleNamedDifferently,
    PersonNotFound,
    SubjectNotFound,
)
from domain.gallery import FaceRecord, GalleryLimits
from domain.people import UNASSIGNED, Candidate, ClusteringRules, assign_photo
from domain.ports import FaceGallery, PeopleStore
from tests.integration.test_gallery_contract import (  # noqa: F401 (fixtures)
    DIM,
    MODEL,
    Maker,
    clear_postgres,
    corrupt,
    face,
    gallery,
    make_gallery,
    open_sql_store,
    pg,
    unit,
)
from tests.integration.test_photo_gallery_contract import index, photo_faces


class Store(FaceGallery, PeopleStore, Protocol):
    """Every store is both ports."""


def indexed(store: Store, photos: int, per_photo: int, seed: int = 0) -> list[list[FaceRecord]]:
    """A collection "c" with `photos` photos of `per_photo` random faces each."""
    store.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(seed), photos * per_photo)
    return [index(store, "c", f"p{i}", vectors[i * per_photo : (i + 1) * per_photo]) for i in range(photos)]


def ids(faces: list[FaceRecord]) -> list[str]:
    return [f.face_id for f in faces]


def test_move_faces_makes_and_grows_people(gallery: Store) -> None:
    photos = indexed(gallery, 3, 2)
    a, b, c = photos[0][0], photos[1][0], photos[2][0]
    first = gallery.move_faces("c", [a.face_id, b.face_id], None)
    assert first.faces == 2 and len(first.person_id) == 32
    grown = gallery.move_faces("c", [c.face_id], first.person_id)
    assert grown.person_id == first.person_id and grown.faces == 3
    info, faces = gallery.person("c", first.person_id)
    assert ids(faces) == [a.face_id, b.face_id, c.face_id]  # in the order stored
    assert info.representative.face_id == a.face_id  # equal quality: the first stored
    assert gallery.memberships("c") == {f.face_id: first.person_id for f in (a, b, c)}
    assert gallery.people_of("c", [a.face_id, photos[0][1].face_id, "0" * 32]) == {a.face_id: first.person_id}
    # Moving a face to a new person takes it out of the old one; an emptied person goes.
    split = gallery.move_faces("c", [c.face_id], None)
    assert gallery.person("c", first.person_id)[0].faces == 2
    gallery.move_faces("c", [c.face_id], first.person_id)
    with pytest.raises(PersonNotFound):
        gallery.person("c", split.person_id)


def test_people_pages_show_their_best_face(gallery: Store) -> None:
    photos = indexed(gallery, 4, 1)
    made = [gallery.move_faces("c", [photos[i][0].face_id], None) for i in range(4)]
    listed = gallery.people("c", None, 3)
    assert [p.person_id for p in listed] == sorted(p.person_id for p in made)[:3]
    rest = gallery.people("c", listed[-1].person_id, 10)
    assert [p.person_id for p in rest] == sorted(p.person_id for p in made)[3:]
    for person in listed + rest:
        assert person.faces == 1 and person.representative.photo_id is not None
        assert person.representative.bbox is not None


def test_a_bad_move_changes_nothing(gallery: Store) -> None:
    photos = indexed(gallery, 2, 1)
    person = gallery.move_faces("c", [photos[0][0].face_id], None)
    with pytest.raises(FaceNotFound):
        gallery.move_faces("c", [photos[1][0].face_id, "f" * 32], person.person_id)
    with pytest.raises(PersonNotFound):
        gallery.move_faces("c", [photos[1][0].face_id], "0" * 32)
    with pytest.raises(InvalidInput):
        gallery.move_faces("c", [], None)
    assert gallery.memberships("c") == {photos[0][0].face_id: person.person_id}


def test_merge_people(gallery: Store) -> None:
    photos = indexed(gallery, 3, 1)
    one = gallery.move_faces("c", [photos[0][0].face_id, photos[1][0].face_id], None)
    two = gallery.move_faces("c", [photos[2][0].face_id], None)
    merged = gallery.merge_people("c", one.person_id, two.person_id)
    assert merged.person_id == one.person_id and merged.faces == 3
    assert [p.person_id for p in gallery.people("c", None, 10)] == [one.person_id]
    with pytest.raises(InvalidInput):
        gallery.merge_people("c", one.person_id, one.person_id)
    with pytest.raises(PersonNotFound):
        gallery.merge_people("c", one.person_id, two.person_id)


def test_not_this_person_is_kept_as_face_pairs(gallery: Store) -> None:
    photos = indexed(gallery, 3, 1)
    a, b, c = (photos[i][0].face_id for i in range(3))
    person = gallery.move_faces("c", [a, b, c], None)
    left = gallery.refuse_face("c", person.person_id, c)
    assert left is not None and left.faces == 2
    assert gallery.refusals("c") == sorted((min(c, x), max(c, x)) for x in (a, b))
    assert c not in gallery.memberships("c")
    with pytest.raises(FaceNotFound):  # not the person's (any more)
        gallery.refuse_face("c", person.person_id, c)
    gallery.refuse_face("c", person.person_id, b)
    assert gallery.refuse_face("c", person.person_id, a) is None  # its last face
    assert gallery.people("c", None, 10) == []
    assert len(gallery.refusals("c")) == 3
    gallery.delete_face("c", c)
    assert gallery.refusals("c") == [(min(a, b), max(a, b))]


def test_not_this_person_on_a_named_face_unlabels_it(make_gallery: Maker) -> None:
    """A face naming labelled, refused: back to an unlabelled photo face in the same transaction (out
    of the subject, subject search and `subjects`; still in its photo and photo search), the subject
    going with its last face; durably (a reopen reads the same)."""
    store = make_gallery()
    photos = indexed(store, 3, 2, seed=5)
    a, b, c = photos[0][0], photos[1][0], photos[2][0]
    person = store.move_faces("c", [a.face_id, b.face_id, c.face_id], None)
    assert store.label_faces("c", [a.face_id, b.face_id, c.face_id], "ann") == 3
    left = store.refuse_face("c", person.person_id, c.face_id)
    assert left is not None and left.faces == 2
    info, faces = store.subject("c", "ann")
    assert info.faces == 2 and sorted(ids(faces)) == sorted([a.face_id, b.face_id])
    hits = store.search("c", c.embedding[None, :], 5).hits[0]
    assert c.face_id not in {hit.face_id for hit in hits}  # subject search: not ann's any more
    assert store.search("c", c.embedding[None, :], 1, external_id="ann").hits[0][0].face_id != c.face_id
    unlabelled = next(f for f in store.faces("c") if f.face_id == c.face_id)
    assert unlabelled.external_id is None and unlabelled.photo_id == "p2"
    assert [f.external_id for f in store.photo("c", "p2")[1]] == [None, None]
    found = store.search_photos("c", c.embedding, 0.99, 1, None).hits
    assert found[0].face_id == c.face_id  # still its photo's face
    assert store.collection("c").faces == 6 and store.collection("c").subjects == 1
    # The subject's last faces refused: it goes, as when its last face is deleted.
    store.refuse_face("c", person.person_id, b.face_id)
    assert store.refuse_face("c", person.person_id, a.face_id) is None
    with pytest.raises(SubjectNotFound):
        store.subject("c", "ann")
    assert store.subjects("c", None, 10) == [] and store.collection("c").subjects == 0
    assert store.search("c", a.embedding[None, :], 1).hits[0] == []
    assert len(store.refusals("c")) == 3
    # The face can be named again (to anyone), as any unlabelled face.
    assert store.label_faces("c", [c.face_id], "bob") == 1
    store.close()
    if store.kind == "memory":
        return
    reopened = make_gallery()
    assert ids(reopened.subject("c", "bob")[1]) == [c.face_id]
    with pytest.raises(SubjectNotFound):
        reopened.subject("c", "ann")
    assert reopened.search("c", a.embedding[None, :], 1).hits[0][0].face_id == c.face_id  # only bob's is labelled


def test_not_this_person_on_an_enrolled_face_changes_nothing(gallery: Store) -> None:
    """A face enrolled to a subject (no photo) is the subject's by the caller's word: refused
    (EnrolledFaceRefused, delete it from the subject instead), the person and subject as they were."""
    photos = indexed(gallery, 1, 1)
    enrolled, _ = gallery.add_face("c", face("ann", unit(np.random.default_rng(9), 1)[0]))
    person = gallery.move_faces("c", [photos[0][0].face_id, enrolled.face_id], None)
    with pytest.raises(EnrolledFaceRefused) as raised:
        gallery.refuse_face("c", person.person_id, enrolled.face_id)
    assert raised.value.code == "face_enrolled_to_subject"
    assert gallery.person("c", person.person_id)[0].faces == 2
    assert ids(gallery.subject("c", "ann")[1]) == [enrolled.face_id]
    assert gallery.refusals("c") == []


def test_people_named_differently_never_merge(gallery: Store) -> None:
    """Two subjects are never one person: PeopleNamedDifferently, nothing changes. The same subject,
    or a named and an unnamed person, merge (the unnamed one's faces stay unlabelled)."""
    photos = indexed(gallery, 5, 1)
    f = [photos[i][0].face_id for i in range(5)]
    ann = gallery.move_faces("c", [f[0], f[1]], None)
    bob = gallery.move_faces("c", [f[2]], None)
    unnamed = gallery.move_faces("c", [f[3]], None)
    also_ann = gallery.move_faces("c", [f[4]], None)
    gallery.label_faces("c", [f[0], f[1], f[4]], "ann")
    gallery.label_faces("c", [f[2]], "bob")
    before = gallery.memberships("c")
    for kept, other in ((ann, bob), (bob, ann)):
        with pytest.raises(PeopleNamedDifferently) as raised:
            gallery.merge_people("c", kept.person_id, other.person_id)
        assert raised.value.code == "people_named_differently"
    assert gallery.memberships("c") == before
    assert gallery.merge_people("c", ann.person_id, also_ann.person_id).faces == 3
    assert gallery.merge_people("c", ann.person_id, unnamed.person_id).faces == 4
    assert gallery.subject("c", "ann")[0].faces == 3  # the unnamed face stays unlabelled
    with pytest.raises(PeopleNamedDifferently):  # bob into the grown ann, either way round
        gallery.merge_people("c", bob.person_id, ann.person_id)


def test_replace_people_keeps_ids_of_people_that_stay(gallery: Store) -> None:
    photos = indexed(gallery, 5, 1)
    f = [photos[i][0].face_id for i in range(5)]
    old = gallery.move_faces("c", f[:3], None)
    other = gallery.move_faces("c", f[3:4], None)
    gallery.refuse_face("c", old.person_id, f[2])
    count = gallery.replace_people("c", [[f[4], "e" * 32], [*f[:2], f[3]]], set(f))
    assert count == 2
    members = gallery.memberships("c")
    assert members[f[0]] == members[f[1]] == members[f[3]] == old.person_id  # most of its faces were old's
    assert members[f[4]] not in (old.person_id, other.person_id) and f[2] not in members
    assert len(gallery.refusals("c")) == 2  # corrections stay
    with pytest.raises(PersonNotFound):
        gallery.person("c", other.person_id)
    with pytest.raises(InvalidInput):
        gallery.replace_people("c", [[f[0]], [f[0]]], set(f))


def test_deleting_a_photo_or_subject_takes_its_faces_out_of_people(gallery: Store) -> None:
    photos = indexed(gallery, 3, 2)
    lone = gallery.move_faces("c", [photos[0][0].face_id], None)
    pair = gallery.move_faces("c", [photos[0][1].face_id, photos[1][0].face_id], None)
    gallery.delete_photo("c", "p0")
    with pytest.raises(PersonNotFound):  # its only face went with the photo
        gallery.person("c", lone.person_id)
    assert ids(gallery.person("c", pair.person_id)[1]) == [photos[1][0].face_id]
    vector = unit(np.random.default_rng(9), 1)[0]
    labelled, _ = gallery.add_face("c", face("ann", vector))
    gallery.move_faces("c", [labelled.face_id], pair.person_id)
    gallery.delete_subject("c", "ann")
    assert gallery.person("c", pair.person_id)[0].faces == 1
    gallery.delete_face("c", photos[1][0].face_id)
    assert gallery.people("c", None, 10) == [] and gallery.memberships("c") == {}


def test_people_belong_to_their_collection(gallery: Store) -> None:
    photos = indexed(gallery, 1, 1)
    gallery.create_collection("d", MODEL, DIM, 0.3)
    with pytest.raises(FaceNotFound):  # a face of another collection
        gallery.move_faces("d", [photos[0][0].face_id], None)
    person = gallery.move_faces("c", [photos[0][0].face_id], None)
    with pytest.raises(PersonNotFound):
        gallery.person("d", person.person_id)
    gallery.delete_collection("c")
    gallery.create_collection("c", MODEL, DIM, 0.3)
    assert gallery.people("c", None, 10) == []


def test_people_survive_a_reopen(make_gallery: Maker) -> None:
    store = make_gallery()
    photos = indexed(store, 2, 1)
    person = store.move_faces("c", [photos[0][0].face_id, photos[1][0].face_id], None)
    store.refuse_face("c", person.person_id, photos[1][0].face_id)
    store.label_faces("c", [photos[0][0].face_id], "ann")
    store.close()
    reopened = make_gallery()
    if store.kind == "memory":  # nothing survives the process, by design
        assert reopened.collections() == []
        return
    assert reopened.memberships("c") == {photos[0][0].face_id: person.person_id}
    assert len(reopened.refusals("c")) == 1
    hit = reopened.search("c", photos[0][0].embedding[None, :], 1).hits[0][0]  # labelled, found after a start
    assert (hit.external_id, hit.face_id) == ("ann", photos[0][0].face_id)


def test_label_faces_names_a_persons_faces_for_subject_search(gallery: Store) -> None:
    photos = indexed(gallery, 3, 2, seed=4)
    faces = [photos[0][0], photos[1][0], photos[2][0]]
    assert gallery.label_faces("c", [f.face_id for f in faces], "ann") == 3
    info, stored = gallery.subject("c", "ann")
    assert info.faces == 3 and sorted(f.face_id for f in stored) == sorted(f.face_id for f in faces)
    assert all(f.photo_id is not None for f in stored)  # still their photos' faces
    outcome = gallery.search("c", faces[1].embedding[None, :], 1)
    assert outcome.hits[0][0].external_id == "ann" and outcome.hits[0][0].face_id == faces[1].face_id
    assert gallery.collection("c").faces == 6  # relabelled, not copied
    assert gallery.label_faces("c", [faces[0].face_id, photos[0][1].face_id], "ann") == 0  # labelled / same source
    with pytest.raises(FaceNotFound):
        gallery.label_faces("c", [photos[1][1].face_id, "f" * 32], "bob")
    assert gallery.subjects("c", None, 10)[0].external_id == "ann" and len(gallery.subjects("c", None, 10)) == 1
    gallery.delete_photo("c", "p0")  # its labelled face goes with it, from the subject too
    assert gallery.subject("c", "ann")[0].faces == 2


def test_label_faces_keeps_the_subject_limits(make_gallery: Maker) -> None:
    store = make_gallery(GalleryLimits(5, 1, 2, 100))
    photos = indexed(store, 3, 1)
    with pytest.raises(GalleryLimitExceeded) as raised:
        store.label_faces("c", [p[0].face_id for p in photos], "ann")
    assert raised.value.code == "subject_face_limit" and store.subjects("c", None, 10) == []
    store.label_faces("c", [photos[0][0].face_id], "ann")
    with pytest.raises(GalleryLimitExceeded) as raised:
        store.label_faces("c", [photos[1][0].face_id], "bob")
    assert raised.value.code == "subject_limit"


def test_a_face_stored_while_a_pass_ran_keeps_its_person(gallery: Store) -> None:
    """The pass read faces 0-3; face 4 joined old's person afterwards, face 5 joined other's."""
    photos = indexed(gallery, 6, 1)
    f = [photos[i][0].face_id for i in range(6)]
    old = gallery.move_faces("c", [f[0], f[1], f[4]], None)
    other = gallery.move_faces("c", [f[2], f[5]], None)
    gallery.replace_people("c", [[f[0], f[1]]], set(f[:4]))  # other's face 2 is nobody's now
    members = gallery.memberships("c")
    assert members == {f[0]: old.person_id, f[1]: old.person_id, f[4]: old.person_id}
    with pytest.raises(PersonNotFound):  # its id did not live on: its unread face 5 is nobody's
        gallery.person("c", other.person_id)


def test_deleting_a_person_forgets_its_faces_everywhere(make_gallery: Maker) -> None:
    """Its faces leave the store, both searches, export, people and corrections, durably; a subject
    left with no face goes, one with other faces stays; the photos stay with their other faces, and
    the same photo's bytes indexed again answer it as stored (duplicate): the faces do not come back."""
    store = make_gallery()
    store.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(31), 7)
    first, first_faces = photo_faces("p0", vectors[0:2])
    p0 = store.add_photo("c", first, first_faces)[1]
    p1, p2 = index(store, "c", "p1", vectors[2:4]), index(store, "c", "p2", vectors[4:6])
    doomed = store.move_faces("c", [p0[0].face_id, p1[0].face_id, p2[1].face_id], None)
    store.refuse_face("c", doomed.person_id, p2[1].face_id)  # corrections naming its faces go too
    kept = store.move_faces("c", [p1[1].face_id, p2[0].face_id], None)
    store.label_faces("c", [p0[0].face_id], "ann")  # ann has no other face: she goes
    store.label_faces("c", [p1[0].face_id], "bob")
    enrolled, _ = store.add_face("c", face("bob", vectors[6]))  # bob keeps this one
    gone = {p0[0].face_id, p1[0].face_id}

    assert store.delete_person("c", doomed.person_id) == 2
    with pytest.raises(PersonNotFound):
        store.delete_person("c", doomed.person_id)

    def check(gallery: Store) -> None:
        with pytest.raises(PersonNotFound):
            gallery.person("c", doomed.person_id)
        assert [p.person_id for p in gallery.people("c", None, 10)] == [kept.person_id]
        assert gone.isdisjoint(gallery.memberships("c")) and gallery.refusals("c") == []
        assert {f.face_id for f in gallery.faces("c")} == {
            f.face_id for f in (p0[1], p1[1], p2[0], p2[1], enrolled)
        }  # export
        for vector in vectors[[0, 2]]:  # photo search: their photos are found by their other faces only
            assert all(hit.face_id not in gone for hit in gallery.search_photos("c", vector, -1.0, 10, None).hits)
            assert gallery.search_photos("c", vector, 0.99, 10, None).count == 0
        hits = gallery.search("c", vectors[[0, 2]], 5).hits  # subject search
        assert all(hit.face_id == enrolled.face_id for row in hits for hit in row)
        with pytest.raises(SubjectNotFound):
            gallery.subject("c", "ann")
        assert [f.face_id for f in gallery.subject("c", "bob")[1]] == [enrolled.face_id]
        info = gallery.collection("c")
        assert (info.subjects, info.faces, info.photos) == (1, 5, 3)
        photo, faces = gallery.photo("c", "p0")
        assert (photo.faces, [f.face_id for f in faces]) == (1, [p0[1].face_id])
        assert [p.faces for p in gallery.photos("c", None, 10)] == [1, 1, 2]

    check(store)
    again, faces, duplicate = store.add_photo("c", first, photo_faces("p0", vectors[0:2], first.source_digest)[1])
    assert duplicate and again.faces == 1 and [f.face_id for f in faces] == [p0[1].face_id]
    check(store)
    if store.kind == "memory":
        return  # it keeps nothing to read back
    store.close()
    check(make_gallery())


def test_an_unknown_person_is_not_deleted(gallery: Store) -> None:
    photos = indexed(gallery, 1, 1)
    with pytest.raises(PersonNotFound):
        gallery.delete_person("c", "0" * 32)
    person = gallery.move_faces("c", [photos[0][0].face_id], None)
    gallery.create_collection("d", MODEL, DIM, 0.3)
    with pytest.raises(PersonNotFound):  # a person of another collection
        gallery.delete_person("d", person.person_id)
    assert gallery.person("c", person.person_id)[0].faces == 1


def test_join_people_puts_new_faces_into_people_and_skips_what_is_gone(gallery: Store) -> None:
    photos = indexed(gallery, 6, 1)
    f = [photos[i][0].face_id for i in range(6)]
    first = gallery.move_faces("c", [f[0]], None)
    second = gallery.move_faces("c", [f[1], f[2]], None)
    lone = gallery.move_faces("c", [f[3]], None)
    gallery.delete_photo("c", "p5")  # its face is gone: skipped, as a person that is gone
    joins = {f[4]: first.person_id, f[5]: first.person_id, f[3]: second.person_id, f[2]: "f" * 32}
    assert gallery.join_people("c", joins) == 2
    assert gallery.memberships("c") == {
        f[0]: first.person_id,
        f[4]: first.person_id,
        f[1]: second.person_id,
        f[2]: second.person_id,
        f[3]: second.person_id,
    }
    with pytest.raises(PersonNotFound):  # its last face left it
        gallery.person("c", lone.person_id)
    assert gallery.join_people("c", {}) == 0


def one_face_at_a_time(store: Store, faces: list[FaceRecord], rules: ClusteringRules) -> list[str | None]:
    """The people a new photo's faces join by one photo search per face (what `assign_new` did before
    it searched them together), without storing anything."""
    own = {f.face_id for f in faces}
    hits = [
        [
            h
            for h in store.search_photos("c", f.embedding, rules.link_similarity, rules.neighbours + 1, None).hits
            if h.face_id not in own
        ]
        for f in faces
    ]
    person_of = store.people_of("c", sorted({h.face_id for row in hits for h in row}))
    codes = {person: i for i, person in enumerate(sorted(set(person_of.values())))}
    chosen = assign_photo(
        [[Candidate(h.similarity, codes.get(person_of.get(h.face_id, ""), UNASSIGNED)) for h in row] for row in hits],
        [() for _ in faces],
        rules,
    )
    people = {code: person for person, code in codes.items()}
    return [None if code == UNASSIGNED else people[code] for code in chosen]


def test_a_new_photos_faces_join_people_as_one_search_per_face_would(gallery: Store) -> None:
    """The use case on every store: 12 identities in 30 photos, grouped by a full pass; then a photo of
    10 faces (more than one group of probes), 7 of known people and 3 of nobody yet."""
    from adapters.people.neighbours import FaissNeighbours
    from domain.use_cases.collections import CollectionRules
    from domain.use_cases.people import People

    rules = CollectionRules(default_threshold=0.5, default_top_k=3, max_top_k=10, max_page=50)
    people = People(gallery, gallery, FaissNeighbours(), rules)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(70)
    centres = unit(rng, 22)

    def faces_of(identities: list[int]) -> np.ndarray:
        noisy = centres[identities] + 0.35 * unit(rng, len(identities))
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    for p in range(30):
        index(gallery, "c", f"p{p:02d}", faces_of([int(i) for i in rng.choice(12, 4, replace=False)]))
    people.recluster("c")
    new = index(gallery, "c", "new", faces_of([0, 1, 2, 3, 4, 5, 6, 12, 13, 14]))
    expected = one_face_at_a_time(gallery, new, people.clustering)
    assert people.assign_new("c", new) == expected
    assert sum(person is not None for person in expected) >= 5 and expected[7:] == [None] * 3
    members = gallery.memberships("c")
    assert [members.get(f.face_id) for f in new] == expected


def test_a_merge_or_a_split_keeps_its_people(gallery: Store) -> None:
    """People shaped by hand are kept (`kept_memberships`, what a re-cluster anchors): the merged
    person, and both people of a split; a person a pass formed is not."""
    photos = indexed(gallery, 6, 1)
    f = [photos[i][0].face_id for i in range(6)]
    gallery.replace_people("c", [f[:2], f[2:4], f[4:]], set(f))
    assert gallery.kept_memberships("c") == {}
    members = gallery.memberships("c")
    one, two, three = (members[f[i]] for i in (0, 2, 4))
    assert not gallery.person("c", one)[0].kept
    assert gallery.merge_people("c", one, two).kept
    assert gallery.kept_memberships("c") == {face_id: one for face_id in f[:4]}
    assert [p.kept for p in gallery.people("c", None, 10) if p.person_id != one] == [False]
    split = gallery.move_faces("c", [f[5]], None)
    assert split.kept and gallery.person("c", three)[0].kept
    assert gallery.kept_memberships("c") == {
        **{face_id: one for face_id in f[:4]},
        f[4]: three,
        f[5]: split.person_id,
    }
    gallery.refuse_face("c", split.person_id, f[5])  # its last face: the person goes, and its flag
    assert f[5] not in gallery.kept_memberships("c")
    with pytest.raises(PersonNotFound):  # a merge that fails marks nothing
        gallery.merge_people("c", three, "f" * 32)


def test_replace_people_carries_the_kept_flag_with_the_id(gallery: Store) -> None:
    """The group holding a kept person's faces keeps its id and its flag, even where another person
    holds more of the group's faces; a kept person the pass dropped goes, and its flag."""
    photos = indexed(gallery, 7, 1)
    f = [photos[i][0].face_id for i in range(7)]
    kept = gallery.move_faces("c", f[:2], None).person_id
    gallery.replace_people("c", [f[:2], f[2:5], f[5:]], set(f))  # re-read: f[2:5] and f[5:] not kept
    assert gallery.kept_memberships("c") == {f[0]: kept, f[1]: kept}
    members = gallery.memberships("c")
    big, small = members[f[2]], members[f[5]]
    gallery.replace_people("c", [[*f[:2], *f[2:5]], f[5:]], set(f))  # the kept pair with three of big's
    assert gallery.memberships("c") == {**{face_id: kept for face_id in f[:5]}, f[5]: small, f[6]: small}
    assert gallery.kept_memberships("c") == {face_id: kept for face_id in f[:5]}
    with pytest.raises(PersonNotFound):
        gallery.person("c", big)
    gallery.replace_people("c", [f[5:]], set(f))
    assert gallery.kept_memberships("c") == {}


def test_kept_people_survive_a_reopen(make_gallery: Maker) -> None:
    store = make_gallery()
    photos = indexed(store, 3, 1)
    f = [photos[i][0].face_id for i in range(3)]
    person = store.move_faces("c", f[:2], None)
    store.replace_people("c", [f[:2], [f[2]]], set(f))
    store.close()
    reopened = make_gallery()
    if store.kind == "memory":  # nothing survives the process, by design
        return
    assert reopened.kept_memberships("c") == {f[0]: person.person_id, f[1]: person.person_id}


def test_every_correction_moves_the_people_revision(make_gallery: Maker) -> None:
    """A split, a merge, a "not this person", a naming and a person's delete each move it (a failed
    one does not); new faces joining people and a full pass do not; it survives a reopen."""
    store = make_gallery()
    photos = indexed(store, 6, 1)
    f = [photos[i][0].face_id for i in range(6)]
    seen = [store.people_revision("c")]

    def moved() -> bool:
        seen.append(store.people_revision("c"))
        return seen[-1] > seen[-2]

    one = store.move_faces("c", f[:3], None).person_id
    assert moved()
    two = store.move_faces("c", [f[3]], None).person_id
    assert moved()
    store.merge_people("c", one, two)
    assert moved()
    store.refuse_face("c", one, f[3])
    assert moved()
    assert store.label_faces("c", f[:3], "ann") == 3
    assert moved()
    with pytest.raises(PersonNotFound):
        store.merge_people("c", one, "f" * 32)
    with pytest.raises(PeopleNamedDifferently):
        store.label_faces("c", f[:3], "bob")
    assert not moved()
    store.join_people("c", {f[4]: one})
    store.replace_people("c", [f[:5]], set(f[:5]))
    assert not moved()
    store.delete_person("c", store.move_faces("c", [f[5]], None).person_id)
    assert moved()
    store.close()
    if store.kind != "memory":  # nothing survives the process, by design
        assert make_gallery().people_revision("c") == seen[-1]


def test_replace_people_based_on_an_old_revision_stores_nothing(gallery: Store) -> None:
    """A full pass that read the revision before a correction stores nothing (it would undo it) and
    says so (None); based on the revision as it stands, it stores."""
    photos = indexed(gallery, 4, 1)
    f = [photos[i][0].face_id for i in range(4)]
    gallery.replace_people("c", [f[:2], f[2:]], set(f))
    members = gallery.memberships("c")
    read = gallery.people_revision("c")
    merged = gallery.merge_people("c", members[f[0]], members[f[2]])
    assert gallery.replace_people("c", [f[:2], f[2:]], set(f), based_on=read) is None
    assert gallery.memberships("c") == {face_id: merged.person_id for face_id in f}
    assert gallery.kept_memberships("c") == {face_id: merged.person_id for face_id in f}
    assert gallery.replace_people("c", [f], set(f), based_on=gallery.people_revision("c")) == 1
    assert gallery.memberships("c") == {face_id: merged.person_id for face_id in f}


def test_naming_faces_of_another_subject_is_refused(gallery: Store) -> None:
    """Two subjects are never one person: a naming whose faces hold one labelled to another subject
    changes nothing (PeopleNamedDifferently); naming again with the same subject labels the rest."""
    photos = indexed(gallery, 3, 1)
    f = [photos[i][0].face_id for i in range(3)]
    assert gallery.label_faces("c", f[:2], "ann") == 2
    with pytest.raises(PeopleNamedDifferently) as raised:
        gallery.label_faces("c", f, "bob")
    assert raised.value.code == "people_named_differently"
    assert {face.face_id: face.external_id for face in gallery.faces("c")} == {f[0]: "ann", f[1]: "ann", f[2]: None}
    with pytest.raises(SubjectNotFound):
        gallery.subject("c", "bob")
    assert gallery.label_faces("c", f, "ann") == 1
    assert {face.face_id: face.external_id for face in gallery.faces("c")}[f[2]] == "ann"


def test_parallel_namings_of_one_person_label_it_to_one_subject(gallery: Store) -> None:
    """Ten namings of the same faces at once, each with its own subject: the first to commit labels
    them, every other is refused (checked in the labelling transaction), so one subject holds them."""
    photos = indexed(gallery, 4, 1)
    f = [photos[i][0].face_id for i in range(4)]
    outcomes: dict[str, object] = {}

    def name(subject: str) -> None:
        try:
            outcomes[subject] = gallery.label_faces("c", f, subject)
        except PeopleNamedDifferently as refused:
            outcomes[subject] = refused

    threads = [threading.Thread(target=name, args=(f"s{i}",)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labelled = [subject for subject, outcome in outcomes.items() if outcome == 4]
    assert len(labelled) == 1 and len(outcomes) == 10
    assert all(isinstance(outcome, PeopleNamedDifferently) for s, outcome in outcomes.items() if s not in labelled)
    assert {face.external_id for face in gallery.faces("c")} == set(labelled)


# Back to schema version 5, as a database of the release before kept people and the people revision.
TO_VERSION_5 = {
    "sqlite": [
        "ALTER TABLE people DROP COLUMN kept",
        "ALTER TABLE collections DROP COLUMN people_revision",
        "PRAGMA user_version = 5",
    ],
    "postgresql": [
        "ALTER TABLE gallery_people DROP COLUMN kept",
        "ALTER TABLE gallery_collections DROP COLUMN people_revision",
        "DELETE FROM gallery_schema WHERE version > 5",
    ],
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_version_5_database_is_migrated_and_its_people_are_not_kept(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place, open_store = open_sql_store(kind, request, tmp_path)
    store = open_store()
    photos = indexed(store, 3, 1)
    f = [photos[i][0].face_id for i in range(3)]
    person = store.move_faces("c", f[:2], None)
    other = store.move_faces("c", [f[2]], None)
    store.close()
    corrupt(kind, place, TO_VERSION_5[kind])

    store = open_store()  # migrates: every person there is not kept
    try:
        assert store.memberships("c") == {f[0]: person.person_id, f[1]: person.person_id, f[2]: other.person_id}
        assert store.kept_memberships("c") == {}
        assert store.people_revision("c") == 0
        store.merge_people("c", person.person_id, other.person_id)
        assert store.kept_memberships("c") == {face_id: person.person_id for face_id in f}
        assert store.people_revision("c") == 1
    finally:
        store.close()
        if kind == "postgresql":
            clear_postgres(place)
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(place) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 6
    else:
        with psycopg.connect(place) as conn:
            assert conn.execute("SELECT max(version) FROM gallery_schema").fetchone() == (6,)
