"""People over HTTP (docs/api.md, "People"), on every store, with the fake backend (one "face" per
image, its vector a function of the image: the same image under several photo ids is one person):
a re-cluster in the background with its progress, the people and a person's photos, a new photo's
face joining its person as it is indexed, not-this-person, split, merge, deleting a person with its
faces, and the codes."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from adapters.people.neighbours import FaissNeighbours
from app.bootstrap import bootstrap
from domain.people import Neighbours
from tests.http.test_collections_http import random_image, store_env  # noqa: F401 (a fixture)
from tests.support.services import AUTH, encode_png, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
PEOPLE = "/collections/events/people"


@pytest.fixture
def client(store_env: dict[str, str]) -> Iterator[Client]:  # noqa: F811
    with make_client(settings_for("fake", **store_env)) as client:
        client.post("/collections", headers=AUTH, json={"name": "events", "threshold": 0.5})
        yield client


class HeldWhileBuilt:
    """The re-cluster's kNN graph, its build held (once armed) until the test has made a correction
    over HTTP: the race a user meets while a large collection's graph takes seconds, made deterministic."""

    def __init__(self) -> None:
        self.armed = False
        self.building = threading.Event()
        self.go_on = threading.Event()

    def neighbours(self, vectors: np.ndarray, k: int) -> Neighbours:
        if self.armed:
            self.armed = False
            self.building.set()
            assert self.go_on.wait(30), "the test never let the graph's build go on"
        return FaissNeighbours().neighbours(vectors, k)

    def during_a_recluster(self, client: Client, correction: Any) -> tuple[Any, dict[str, Any]]:
        """`correction()`'s answer, made while a re-cluster builds its graph, and the re-cluster's end."""
        self.armed, self.building, self.go_on = True, threading.Event(), threading.Event()
        started = client.post("/collections/events/clustering", headers=AUTH)
        assert started.status_code in (200, 202), started.text
        assert self.building.wait(30), "the re-cluster never built its graph"
        try:
            answer = correction()
        finally:
            self.go_on.set()
        return answer, reclustered(client)  # the same job: it is still running


@pytest.fixture
def held(store_env: dict[str, str]) -> Iterator[tuple[Client, HeldWhileBuilt]]:  # noqa: F811
    graph = HeldWhileBuilt()
    settings = settings_for("fake", **store_env)
    container = bootstrap(settings)
    container.collections.kwargs["neighbours"].override(providers.Object(graph))
    with make_client(settings, container) as client:
        client.post("/collections", headers=AUTH, json={"name": "events", "threshold": 0.5})
        yield client, graph


def index(client: Client, photo_id: str, image: int) -> str:
    """The photo's one face id."""
    answer = client.post(
        f"/collections/events/photos/{photo_id}", headers=AUTH, json={"image_base64": random_image(image)}
    )
    assert answer.status_code == 201, answer.text
    (face,) = answer.json()["faces"]
    return str(face["face_id"])


def variant(image: int, copy: int) -> str:
    """Image `image` with one corner pixel changed: other bytes (another source), the same fake face
    (its vector is the pixels in the box's): photos of one person that naming labels one each."""
    pixels = np.random.default_rng(image).integers(0, 255, (96, 96, 3), np.uint8)
    pixels[0, 0, 0] = copy
    return base64.b64encode(encode_png(pixels)).decode()


def index_variant(client: Client, photo_id: str, image: int, copy: int) -> str:
    answer = client.post(
        f"/collections/events/photos/{photo_id}", headers=AUTH, json={"image_base64": variant(image, copy)}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["faces"][0]["face_id"])


def reclustered(client: Client) -> dict[str, Any]:
    started = client.post("/collections/events/clustering", headers=AUTH)
    assert started.status_code in (200, 202), started.text
    for _ in range(200):
        job = client.get("/collections/events/clustering", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError("the re-cluster did not finish in 10 s")


def people(client: Client) -> dict[frozenset[str], str]:
    """Each person's photo ids -> its person id."""
    found = {}
    for person in client.get(PEOPLE, headers=AUTH).json()["people"]:
        photos = client.get(f"{PEOPLE}/{person['person_id']}/photos", headers=AUTH).json()["photos"]
        found[frozenset(p["photo_id"] for p in photos)] = person["person_id"]
    return found


def test_people_are_clustered_listed_and_corrected(client: Client) -> None:
    missing = client.get("/collections/events/clustering", headers=AUTH)
    assert (missing.status_code, missing.json()["code"]) == (404, "clustering_not_started")
    faces = {photo: index(client, photo, image) for photo, image in [("a1", 1), ("a2", 1), ("a3", 1), ("b1", 2)]}
    faces["b2"] = index(client, "b2", 2)
    index(client, "c1", 3)  # alone: no person

    job = reclustered(client)
    assert (job["state"], job["progress"], job["faces"], job["people"], job["assigned"]) == ("done", 1.0, 6, 2, 5)
    found = people(client)
    assert set(found) == {frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2"})}
    a = found[frozenset({"a1", "a2", "a3"})]
    listed = {p["person_id"]: p for p in client.get(PEOPLE, headers=AUTH).json()["people"]}
    assert listed[a]["faces"] == 3 and listed[a]["representative"]["photo_id"] in ("a1", "a2", "a3")
    assert len(listed[a]["representative"]["bbox"]) == 4

    faces["a4"] = index(client, "a4", 1)  # joins person a as it is indexed
    person = client.get(f"{PEOPLE}/{a}", headers=AUTH).json()
    assert [f["face_id"] for f in person["faces"]] == [faces[p] for p in ("a1", "a2", "a3", "a4")]

    refused = client.post(f"{PEOPLE}/{a}/not-this-person", headers=AUTH, json={"face_id": faces["a4"]})
    assert refused.status_code == 200 and refused.json()["person"]["faces"] == 3
    assert reclustered(client)["people"] == 2  # a4 stays out of a; alone, it is nobody
    assert people(client)[frozenset({"a1", "a2", "a3"})] == a  # a kept its id

    split = client.post(f"{PEOPLE}/{a}/split", headers=AUTH, json={"face_ids": [faces["a3"]]})
    assert split.status_code == 201 and split.json()["faces"] == 1
    merged = client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": split.json()["person_id"]})
    assert merged.status_code == 200 and merged.json()["faces"] == 3

    b = found[frozenset({"b1", "b2"})]
    named = client.post(f"{PEOPLE}/{b}/name", headers=AUTH, json={"external_id": "bea"})
    # b1 and b2 are one image's bytes: one face per source per subject, as enrolment, so b1's only.
    assert named.status_code == 200 and named.json()["labelled_faces"] == 1, named.text
    verified = client.post(
        "/collections/events/subjects/bea/verify", headers=AUTH, json={"image_base64": random_image(2)}
    )
    assert verified.status_code == 200 and verified.json()["match"] is True, verified.text
    subject = client.get("/collections/events/subjects/bea", headers=AUTH).json()
    assert [f["face_id"] for f in subject["faces"]] == [faces["b1"]]

    client.delete("/collections/events/photos/b1", headers=AUTH)
    client.delete("/collections/events/photos/b2", headers=AUTH)
    assert set(people(client)) == {frozenset({"a1", "a2", "a3"})}  # b's person went with its faces
    gone = client.get("/collections/events/subjects/bea", headers=AUTH)
    assert gone.status_code == 404  # and the subject its photos' faces made


def test_an_empty_after_is_the_first_page(client: Client) -> None:
    """As the photo and subject lists read it: a client that sends `after=` before it has a cursor."""
    for photo, image in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2)]:
        index(client, photo, image)
    reclustered(client)
    first = client.get(f"{PEOPLE}?limit=1", headers=AUTH).json()
    assert first["next"] is not None
    empty_after = client.get(f"{PEOPLE}?after=&limit=1", headers=AUTH)
    assert empty_after.status_code == 200 and empty_after.json() == first, empty_after.text


def test_deleting_a_person_forgets_its_faces_everywhere(client: Client) -> None:
    faces = {photo: index(client, photo, image) for photo, image in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 4)]}
    reclustered(client)
    (a,) = people(client).values()  # b1 and b2 are other images: nobody
    named = client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "ann"})
    assert named.json()["labelled_faces"] == 1, named.text  # a1 and a2 are one source: one face labelled

    deleted = client.delete(f"{PEOPLE}/{a}", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json() == {"person_id": a, "deleted_faces": 2}, deleted.text
    again = client.delete(f"{PEOPLE}/{a}", headers=AUTH)
    assert (again.status_code, again.json()["code"]) == (404, "person_not_found")
    assert client.get(PEOPLE, headers=AUTH).json()["people"] == []
    assert client.get("/collections/events/subjects/ann", headers=AUTH).status_code == 404  # its only faces
    found = client.post("/collections/events/search/photos", headers=AUTH, json={"image_base64": random_image(1)})
    assert found.status_code == 200 and found.json()["count"] == 0, found.text
    subjects = client.post("/collections/events/search", headers=AUTH, json={"image_base64": random_image(1)})
    assert subjects.json()["results"][0]["matches"] == [], subjects.text
    lines = client.get("/collections/events/export", headers=AUTH).text.splitlines()
    assert len(lines) == 3 and faces["a1"] not in lines[1] + lines[2] and faces["a2"] not in lines[1] + lines[2]
    photo = client.get("/collections/events/photos/a1", headers=AUTH).json()
    assert photo["faces"] == []  # the photo stays, without the person's face
    reindexed = client.post("/collections/events/photos/a1", headers=AUTH, json={"image_base64": random_image(1)})
    # The same bytes: the photo as stored, the forgotten face not brought back.
    assert reindexed.status_code == 200 and reindexed.json()["duplicate"] is True, reindexed.text
    assert reindexed.json()["faces"] == [] and client.get(PEOPLE, headers=AUTH).json()["people"] == []
    assert client.get("/collections/events", headers=AUTH).json()["faces"] == 2


def test_not_this_person_on_a_named_face_unlabels_it_for_good(client: Client) -> None:
    """The new-user repro: a named person's wrong faces refused leave the subject (its faces, subject
    search, verify) and a re-cluster does not bring them back; an enrolled face is refused with 409."""
    faces = {f"y{i}": index_variant(client, f"y{i}", 1, i) for i in (1, 2)}
    faces |= {f"x{i}": index_variant(client, f"x{i}", 7, i) for i in (1, 2)}
    reclustered(client)
    found = people(client)
    y, x = found[frozenset({"y1", "y2"})], found[frozenset({"x1", "x2"})]
    assert client.post(f"{PEOPLE}/{y}/merge", headers=AUTH, json={"person_id": x}).status_code == 200  # a mistake
    named = client.post(f"{PEOPLE}/{y}/name", headers=AUTH, json={"external_id": "yao-ming"})
    assert named.status_code == 200 and named.json()["labelled_faces"] == 4, named.text

    for wrong in ("x1", "x2"):
        refused = client.post(f"{PEOPLE}/{y}/not-this-person", headers=AUTH, json={"face_id": faces[wrong]})
        assert refused.status_code == 200, refused.text
    subject = client.get("/collections/events/subjects/yao-ming", headers=AUTH).json()
    assert sorted(f["face_id"] for f in subject["faces"]) == sorted([faces["y1"], faces["y2"]])
    probe = {"image_base64": variant(7, 9)}
    searched = client.post("/collections/events/search", headers=AUTH, json=probe).json()
    assert {m["face_id"] for m in searched["results"][0]["matches"]} <= {faces["y1"], faces["y2"]}
    assert searched["results"][0]["decision"]["match"] is False, searched
    verified = client.post("/collections/events/subjects/yao-ming/verify", headers=AUTH, json=probe).json()
    assert verified["match"] is False and verified["face_id"] in (faces["y1"], faces["y2"]), verified
    photo = client.get("/collections/events/photos/x1", headers=AUTH).json()
    assert photo["faces"][0]["external_id"] is None  # an unlabelled photo face again

    reclustered(client)
    assert people(client) == {frozenset({"y1", "y2"}): y}  # x1 and x2: kept apart, each alone

    # A face enrolled to the subject (not from a photo) is the subject's by the caller's word.
    enrolled = client.post(
        "/collections/events/subjects/yao-ming/faces", headers=AUTH, json={"image_base64": variant(1, 5)}
    )
    assert enrolled.status_code == 201, enrolled.text
    reclustered(client)
    held = client.get(f"{PEOPLE}/{y}", headers=AUTH).json()["faces"]
    assert enrolled.json()["face_id"] in {f["face_id"] for f in held}
    refused = client.post(f"{PEOPLE}/{y}/not-this-person", headers=AUTH, json={"face_id": enrolled.json()["face_id"]})
    assert (refused.status_code, refused.json()["code"]) == (409, "face_enrolled_to_subject"), refused.text
    assert client.get(f"{PEOPLE}/{y}", headers=AUTH).json()["faces"] == held


def test_a_merge_and_a_split_survive_a_recluster(client: Client) -> None:
    """People shaped by hand are kept: a re-cluster neither splits a merged person again nor puts a
    split person's faces back, and both keep their ids (before this, it undid both)."""
    for photo, image in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2), ("c1", 3), ("c2", 3), ("c3", 3), ("c4", 3)]:
        index(client, photo, image)
    reclustered(client)
    found = people(client)
    a, b, c = (found[frozenset(f"{p}{i}" for i in range(1, n + 1))] for p, n in (("a", 2), ("b", 2), ("c", 4)))
    assert not any(p["kept"] for p in client.get(PEOPLE, headers=AUTH).json()["people"])  # a pass's, not kept
    merged = client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": b})
    assert merged.status_code == 200 and merged.json()["faces"] == 4, merged.text
    faces = {f["photo_id"]: f["face_id"] for f in client.get(f"{PEOPLE}/{c}", headers=AUTH).json()["faces"]}
    split = client.post(f"{PEOPLE}/{c}/split", headers=AUTH, json={"face_ids": [faces["c3"], faces["c4"]]})
    assert split.status_code == 201, split.text
    shaped = {
        frozenset({"a1", "a2", "b1", "b2"}): a,
        frozenset({"c1", "c2"}): c,
        frozenset({"c3", "c4"}): split.json()["person_id"],
    }
    assert people(client) == shaped
    assert merged.json()["kept"] is True and split.json()["kept"] is True
    assert reclustered(client)["people"] == 3
    assert people(client) == shaped
    listed = client.get(PEOPLE, headers=AUTH).json()["people"]
    assert [p["kept"] for p in listed] == [True, True, True]
    assert client.get(f"{PEOPLE}/{c}", headers=AUTH).json()["kept"] is True
    index(client, "c5", 3)  # the split look again: its neighbours are in two people, so it waits
    assert reclustered(client)["people"] == 3  # then joins one of them; the two stay apart
    after = people(client)
    assert set(after.values()) == set(shaped.values())
    assert sum("c5" in photos for photos in after) == 1


def test_people_named_differently_do_not_merge(client: Client) -> None:
    for image, prefix in ((1, "a"), (2, "b"), (3, "c")):
        for i in (1, 2):
            index_variant(client, f"{prefix}{i}", image, i)
    reclustered(client)
    found = people(client)
    a, b, c = (found[frozenset({f"{p}1", f"{p}2"})] for p in "abc")
    client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "yao-ming"})
    client.post(f"{PEOPLE}/{b}/name", headers=AUTH, json={"external_id": "everyone"})

    refused = client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": b})
    assert (refused.status_code, refused.json()["code"]) == (409, "people_named_differently"), refused.text
    assert people(client) == found  # nothing changed
    merged = client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": c})  # named + unnamed
    assert merged.status_code == 200 and merged.json()["faces"] == 4, merged.text
    subject = client.get("/collections/events/subjects/yao-ming", headers=AUTH).json()
    assert len(subject["faces"]) == 2  # c's faces stay unlabelled until the person is named again
    named = client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "yao-ming"})
    assert named.json()["labelled_faces"] == 2, named.text


def test_corrections_made_while_a_recluster_runs_are_kept(held: tuple[Client, HeldWhileBuilt]) -> None:
    """A merge, a split and a "not this person" made while a re-cluster builds its graph (it read the
    people before them) are kept: the pass groups again rather than undo them (before this, it did)."""
    client, graph = held
    for photo, image in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2), ("c1", 3), ("c2", 3), ("c3", 3), ("c4", 3)]:
        index(client, photo, image)
    reclustered(client)
    found = people(client)
    a, b, c = (found[frozenset(f"{p}{i}" for i in range(1, n + 1))] for p, n in (("a", 2), ("b", 2), ("c", 4)))
    faces = {f["photo_id"]: f["face_id"] for f in client.get(f"{PEOPLE}/{c}", headers=AUTH).json()["faces"]}

    merged, job = graph.during_a_recluster(
        client, lambda: client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": b})
    )
    assert merged.status_code == 200, merged.text
    assert job["state"] == "done" and job["people"] == 2, job
    assert people(client) == {frozenset({"a1", "a2", "b1", "b2"}): a, frozenset({"c1", "c2", "c3", "c4"}): c}

    split, job = graph.during_a_recluster(
        client, lambda: client.post(f"{PEOPLE}/{c}/split", headers=AUTH, json={"face_ids": [faces["c4"]]})
    )
    assert split.status_code == 201 and job["state"] == "done", (split.text, job)
    assert people(client)[frozenset({"c4"})] == split.json()["person_id"]

    refused, job = graph.during_a_recluster(
        client, lambda: client.post(f"{PEOPLE}/{c}/not-this-person", headers=AUTH, json={"face_id": faces["c3"]})
    )
    assert refused.status_code == 200 and job["state"] == "done", (refused.text, job)
    after = people(client)
    assert after[frozenset({"c1", "c2"})] == c and not any("c3" in photos and c == p for photos, p in after.items())


def test_a_person_holding_another_subjects_faces_is_not_named(client: Client) -> None:
    """The new-user repro: naming a person q1 then q2 put both subjects in it. Now the second naming is
    refused (409, nothing changes); naming again with the same subject labels the faces still
    unlabelled; of parallel namings with different subjects one wins, the others get 409."""
    for image, prefix in ((1, "a"), (2, "b"), (3, "c")):
        for i in (1, 2):
            index_variant(client, f"{prefix}{i}", image, i)
    reclustered(client)
    found = people(client)
    a, b, c = (found[frozenset({f"{p}1", f"{p}2"})] for p in "abc")
    assert client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "q1"}).status_code == 200
    refused = client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "q2"})
    assert (refused.status_code, refused.json()["code"]) == (409, "people_named_differently"), refused.text
    assert client.get("/collections/events/subjects/q2", headers=AUTH).status_code == 404
    assert client.post(f"{PEOPLE}/{a}/merge", headers=AUTH, json={"person_id": b}).status_code == 200
    again = client.post(f"{PEOPLE}/{a}/name", headers=AUTH, json={"external_id": "q1"})  # b's faces join q1
    assert again.status_code == 200 and again.json()["labelled_faces"] == 2, again.text
    assert len(client.get("/collections/events/subjects/q1", headers=AUTH).json()["faces"]) == 4

    answers: list[Any] = [None] * 10

    def name(i: int) -> None:
        answers[i] = client.post(f"{PEOPLE}/{c}/name", headers=AUTH, json={"external_id": f"s{i}"})

    threads = [threading.Thread(target=name, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * 9, [answer.text for answer in answers]
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"people_named_differently"}
    labels = {f["external_id"] for f in client.get(f"{PEOPLE}/{c}", headers=AUTH).json()["faces"]}
    assert len(labels) == 1 and None not in labels


BAD_REQUESTS = [
    ("get", f"{PEOPLE}/{'0' * 32}", None, 404, "person_not_found"),
    ("get", f"{PEOPLE}/nope", None, 400, "invalid_person_id"),
    ("post", f"{PEOPLE}/{'0' * 32}/merge", {"person_id": "1" * 32}, 404, "person_not_found"),
    ("post", f"{PEOPLE}/{'0' * 32}/split", {"face_ids": []}, 400, "invalid_request"),
    ("post", f"{PEOPLE}/{'0' * 32}/not-this-person", {"face": 1}, 400, "invalid_request"),
    ("post", "/collections/nobody/clustering", None, 404, "collection_not_found"),
    ("post", f"{PEOPLE}/{'0' * 32}/name", {"external_id": "a b/"}, 400, "invalid_external_id"),
    ("post", f"{PEOPLE}/{'0' * 32}/name", {"external_id": "ann"}, 404, "person_not_found"),
    ("get", "/collections/nobody/people", None, 404, "collection_not_found"),
    ("delete", f"{PEOPLE}/{'0' * 32}", None, 404, "person_not_found"),
    ("delete", f"{PEOPLE}/NOPE", None, 400, "invalid_person_id"),
    ("delete", f"/collections/nobody/people/{'0' * 32}", None, 404, "collection_not_found"),
    ("get", "/collections/events/people?limit=0", None, 400, None),
    ("get", "/collections/events/people?after=zz", None, 400, "invalid_cursor"),
]


def test_bad_people_requests_get_their_codes(client: Client) -> None:
    for method, path, body, status, code in BAD_REQUESTS:
        answer = client.request(method.upper(), path, headers=AUTH, json=body)
        assert answer.status_code == status, (path, answer.text)
        if code is not None:
            assert answer.json()["code"] == code, (path, answer.text)
