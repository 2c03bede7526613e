"""Photos in collections over HTTP (docs/api.md, "Photos"), on every store, with the fake backend
(one "face" in the middle of any image that is not flat): indexing, idempotence before inference,
listing, reading, searching with a count and pages, deleting, scopes and codes."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from tests.http.test_collections_http import random_image, store_env  # noqa: F401 (a fixture)
from tests.http.test_scopes import bearer, keys_file
from tests.support.services import AUTH, encode_png, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
FLAT = base64.b64encode(encode_png(np.full((64, 64, 3), 128, np.uint8))).decode()


@pytest.fixture
def client(store_env: dict[str, str]) -> Iterator[Client]:  # noqa: F811
    with make_client(settings_for("fake", **store_env)) as client:
        client.post("/collections", headers=AUTH, json={"name": "events", "threshold": 0.5})
        yield client


@pytest.fixture
def memory_client() -> Iterator[Client]:
    """For what does not depend on the store: the codes."""
    with make_client(settings_for("fake", GALLERY_STORE="memory")) as client:
        client.post("/collections", headers=AUTH, json={"name": "events", "threshold": 0.5})
        yield client


def index(client: Client, photo_id: str, image: str, query: str = "") -> httpx.Response:
    return client.post(f"/collections/events/photos/{photo_id}{query}", headers=AUTH, json={"image_base64": image})


def detections(client: Client) -> float:
    """How many times a detector ran (the stage metric's count)."""
    text = client.get("/metrics", headers=AUTH).text
    found = re.search(r'face_service_stage_duration_seconds_count\{[^}]*stage="detect"[^}]*\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_photo_is_indexed_once_and_a_repeat_runs_no_model(client: Client) -> None:
    first = index(client, "img_0001.jpg", random_image(1))
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["photo_id"], body["duplicate"], body["model"], body["unindexed"]) == (
        "img_0001.jpg",
        False,
        "fake:00000000",
        [],
    )
    (face,) = body["faces"]
    assert len(face["face_id"]) == 32 and len(face["landmarks"]) == 5 and len(face["bbox"]) == 4
    assert set(face["quality"]) == {"level", "score", "reasons"}

    ran = detections(client)
    again = index(client, "img_0001.jpg", random_image(1))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [f["face_id"] for f in again.json()["faces"]] == [face["face_id"]]
    assert detections(client) == ran  # answered from the store: no model ran
    other = index(client, "img_0001.jpg", random_image(2))
    assert (other.status_code, other.json()["code"]) == (409, "photo_exists")
    assert detections(client) == ran

    none = index(client, "empty.png", FLAT)
    assert none.status_code == 201 and none.json()["faces"] == [] and none.json()["unindexed"] == []
    small = index(client, "small.png", random_image(3), "?min_face_size=1000")
    assert small.json()["faces"] == [] and small.json()["unindexed"][0]["reasons"] == ["SMALL_BOUNDING_BOX"]
    multipart = client.post(
        "/collections/events/photos/upload.png",
        headers=AUTH,
        files={"file": ("a.png", base64.b64decode(random_image(4)), "image/png")},
    )
    assert multipart.status_code == 201 and len(multipart.json()["faces"]) == 1

    info = client.get("/collections/events", headers=AUTH).json()
    assert (info["photos"], info["faces"], info["subjects"]) == (4, 2, 0)
    listed = client.get("/collections/events/photos?limit=2", headers=AUTH).json()
    assert [p["photo_id"] for p in listed["photos"]] == ["empty.png", "img_0001.jpg"] and listed[
        "next"
    ] == "img_0001.jpg"
    rest = client.get(f"/collections/events/photos?limit=2&after={listed['next']}", headers=AUTH).json()
    assert [(p["photo_id"], p["faces"]) for p in rest["photos"]] == [("small.png", 0), ("upload.png", 1)]

    read = client.get("/collections/events/photos/img_0001.jpg", headers=AUTH).json()
    assert read["photo_id"] == "img_0001.jpg" and len(read["source_digest"]) == 64
    assert [(f["face_id"], f["external_id"], f["landmarks"]) for f in read["faces"]] == [
        (face["face_id"], None, face["landmarks"])
    ]


def test_photo_search_finds_the_photos_of_a_face_counted_ranked_and_paged(client: Client) -> None:
    for photo_id in ("c.jpg", "a.jpg", "b.jpg"):  # the same bytes: the same face in three photos
        assert index(client, photo_id, random_image(7)).status_code == 201
    index(client, "other.jpg", random_image(8))
    enrolled = client.post(
        "/collections/events/subjects/alice/faces", headers=AUTH, json={"image_base64": random_image(7)}
    )
    assert enrolled.status_code == 201  # a subject's face with the same vector: never a photo hit

    found = client.post(
        "/collections/events/search/photos?top_k=2", headers=AUTH, json={"image_base64": random_image(7)}
    )
    assert found.status_code == 200, found.text
    page = found.json()
    assert (page["collection"], page["method"], page["count"], page["threshold"]) == ("events", "exact", 3, 0.5)
    assert page["probe"]["bbox"] and page["searched_faces"] == 5
    assert [(p["photo_id"], p["similarity"], p["match"], p["external_id"]) for p in page["photos"]] == [
        ("a.jpg", 1.0, True, None),
        ("b.jpg", 1.0, True, None),
    ]
    following = client.post(
        f"/collections/events/search/photos?top_k=2&after={page['next']}",
        headers=AUTH,
        json={"image_base64": random_image(7)},
    ).json()
    assert [p["photo_id"] for p in following["photos"]] == ["c.jpg"] and following["next"] is None
    assert following["count"] == 3
    first_again = client.post(  # an empty after is the first page, as the lists read it
        "/collections/events/search/photos?top_k=2&after=", headers=AUTH, json={"image_base64": random_image(7)}
    ).json()
    assert first_again["photos"] == page["photos"] and first_again["next"] == page["next"]

    vector = client.post("/extract-embedding", headers=AUTH, json={"image_base64": random_image(7)}).json()
    by_embedding = client.post(
        "/collections/events/search/photos?min_similarity=-1",
        headers=AUTH,
        json={"embedding": vector["embedding"], "model": vector["model"]},
    ).json()
    assert by_embedding["probe"] is None and by_embedding["count"] == 4  # every photo with a face
    assert [p["photo_id"] for p in by_embedding["photos"]][:3] == ["a.jpg", "b.jpg", "c.jpg"]
    assert by_embedding["photos"][3]["match"] is False

    subjects = client.post("/collections/events/search", headers=AUTH, json={"image_base64": random_image(8)}).json()
    assert [m["external_id"] for m in subjects["results"][0]["matches"]] == ["alice"]  # photo faces are nobody's


def test_deleting_a_photo_removes_its_faces_from_search_and_export(client: Client) -> None:
    index(client, "gone.jpg", random_image(11))
    index(client, "kept.jpg", random_image(12))
    deleted = client.delete("/collections/events/photos/gone.jpg", headers=AUTH)
    assert deleted.json() == {"photo_id": "gone.jpg", "deleted_faces": 1}
    missing = client.get("/collections/events/photos/gone.jpg", headers=AUTH)
    assert (missing.status_code, missing.json()["code"]) == (404, "photo_not_found")
    again = client.delete("/collections/events/photos/gone.jpg", headers=AUTH)
    assert (again.status_code, again.json()["code"]) == (404, "photo_not_found")
    found = client.post(
        "/collections/events/search/photos", headers=AUTH, json={"image_base64": random_image(11)}
    ).json()
    assert found["count"] == 0 and found["photos"] == []
    lines = [json.loads(line) for line in client.get("/collections/events/export", headers=AUTH).text.splitlines()]
    assert [(line.get("photo_id"), line["external_id"]) for line in lines[1:]] == [("kept.jpg", None)]

    with make_client(settings_for("fake", GALLERY_STORE="memory")) as other:
        headers = {**AUTH, "Content-Type": "application/x-ndjson"}
        body = "\n".join(json.dumps(line) for line in lines).encode()
        assert other.post("/collections/copy/import", headers=headers, content=body).json()["imported"] == 1
        copied = other.get("/collections/copy/photos/kept.jpg", headers=AUTH).json()
        assert len(copied["faces"]) == 1 and copied["faces"][0]["external_id"] is None
        nobody = json.dumps({**lines[1], "photo_id": None, "external_id": None}).encode()
        refused = other.post(
            "/collections/copy2/import", headers=headers, content=body.split(b"\n")[0] + b"\n" + nobody
        )
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_import")


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "code"),
    [
        ("post", "/collections/events/photos/a%20b", "", 400, "invalid_photo_id"),
        ("post", "/collections/events/photos/" + "x" * 129, "", 400, "invalid_photo_id"),
        ("get", "/collections/events/photos/a%0A", "", 400, "invalid_photo_id"),
        ("delete", "/collections/events/photos/a%2Fb", "", 404, "not_found"),  # a / is no id: no such route
        ("delete", "/collections/events/photos/%2E%2E", "", 400, "invalid_photo_id"),
        ("post", "/collections/events/photos/p.jpg", "?max_faces=0", 400, None),
        ("post", "/collections/events/photos/p.jpg", "?quality=great", 400, None),
        ("post", "/collections/events/search/photos", "?top_k=1001", 400, None),
        ("post", "/collections/events/search/photos", "?after=bm90IGEgY3Vyc29y", 400, "invalid_cursor"),
        ("post", "/collections/events/search/photos", "?after=%25%25%25", 400, "invalid_cursor"),
        ("post", "/collections/events/search/photos", "?face=1", 422, "no_face"),
        ("post", "/collections/nope/search/photos", "", 404, "collection_not_found"),
        ("post", "/collections/nope/photos/p.jpg", "", 404, "collection_not_found"),
        ("get", "/collections/events/photos?limit=0", "", 400, None),
    ],
)
def test_bad_photo_requests_get_their_codes(
    memory_client: Client, method: str, path: str, query: str, status: int, code: str | None
) -> None:
    kwargs = {"json": {"image_base64": random_image(21)}} if method == "post" else {}
    answer = getattr(memory_client, method)(path + query, headers=AUTH, **kwargs)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["code"] == code


def test_a_probe_without_a_face_or_an_index_without_an_image_is_refused(memory_client: Client) -> None:
    client = memory_client
    flat = client.post("/collections/events/search/photos", headers=AUTH, json={"image_base64": FLAT})
    assert (flat.status_code, flat.json()["code"]) == (422, "no_face")
    embedding_for_index = client.post(
        "/collections/events/photos/e.jpg", headers=AUTH, json={"embedding": [1.0] * 512, "model": "fake:00000000"}
    )
    assert (embedding_for_index.status_code, embedding_for_index.json()["code"]) == (400, "missing_image")


def test_photo_routes_follow_the_key_scopes(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    secrets = keys_file(keys, ("indexer", ["events"], ["enroll"]), ("finder", ["events"], ["search"]))
    settings = settings_for("fake", GALLERY_STORE="memory", API_KEYS_FILE=str(keys))
    with make_client(settings) as client:
        client.post("/collections", headers=AUTH, json={"name": "events"})
        indexer, finder = bearer(secrets["indexer"]), bearer(secrets["finder"])
        image = {"image_base64": random_image(31)}
        assert client.post("/collections/events/photos/p.jpg", headers=finder, json=image).status_code == 403
        assert client.post("/collections/events/photos/p.jpg", headers=indexer, json=image).status_code == 201
        assert client.get("/collections/events/photos", headers=indexer).status_code == 403
        assert client.get("/collections/events/photos/p.jpg", headers=finder).status_code == 200
        assert client.post("/collections/events/search/photos", headers=finder, json=image).status_code == 200
        assert client.post("/collections/events/search/photos", headers=indexer, json=image).status_code == 403
        assert client.delete("/collections/events/photos/p.jpg", headers=finder).status_code == 403
        assert client.delete("/collections/events/photos/p.jpg", headers=indexer).status_code == 200
