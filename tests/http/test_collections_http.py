"""Face collections over HTTP, on every store (memory, SQLite, PostgreSQL + pgvector): the routes,
their codes and limits; identification with the real models; durability of a served SQLite gallery."""

from __future__ import annotations

import base64
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from app.bootstrap import bootstrap
from bench.__main__ import API_KEY as BENCH_KEY
from bench.__main__ import start_service
from tests.support.pg import PostgresServer, create_database
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO, b64
from tests.support.services import AUTH, encode_png, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
STORES = ["memory", "sqlite", "postgresql"]


def random_image(seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 255, (96, 96, 3), np.uint8)
    return base64.b64encode(encode_png(pixels)).decode()


@pytest.fixture(params=STORES)
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"http_{request.node.name.split('[')[0][-40:]}_{id(tmp_path) % 100000}")
        return {"GALLERY_STORE": "postgresql", "DATABASE_URL": url}
    return {"GALLERY_STORE": request.param, "DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def gallery_client(store_env: dict[str, str]) -> Iterator[Client]:
    # A queue deep enough for the concurrency test's 12 requests at once (2 workers + 8 would shed some).
    with make_client(settings_for("fake", **store_env, MAX_FACES_PER_SUBJECT="3", MAX_QUEUE="32")) as client:
        yield client


def enroll(client: Client, collection: str, subject: str, image: str) -> httpx.Response:
    return client.post(
        f"/collections/{collection}/subjects/{subject}/faces", headers=AUTH, json={"image_base64": image}
    )


def test_the_collection_lifecycle_on_every_store(gallery_client: Client) -> None:
    client = gallery_client
    created = client.post("/collections", headers=AUTH, json={"name": "staff", "threshold": 0.5})
    assert created.status_code == 201 and created.json()["model"] == "fake:00000000"
    again = client.post("/collections", headers=AUTH, json={"name": "staff"})
    assert (again.status_code, again.json()["code"]) == (409, "collection_exists")

    first = enroll(client, "staff", "alice", random_image(1))
    assert first.status_code == 201 and first.json()["duplicate"] is False
    duplicate = enroll(client, "staff", "alice", random_image(1))
    assert (duplicate.status_code, duplicate.json()["duplicate"]) == (200, True)
    assert duplicate.json()["face_id"] == first.json()["face_id"]
    assert enroll(client, "staff", "alice", random_image(2)).status_code == 201
    assert enroll(client, "staff", "bob", random_image(3)).status_code == 201

    info = client.get("/collections/staff", headers=AUTH).json()
    assert (info["subjects"], info["faces"], info["threshold"]) == (2, 3, 0.5)
    page = client.get("/collections/staff/subjects?limit=1", headers=AUTH).json()
    assert [s["external_id"] for s in page["subjects"]] == ["alice"] and page["next"] == "alice"
    rest = client.get(f"/collections/staff/subjects?limit=1&after={page['next']}", headers=AUTH).json()
    assert [s["external_id"] for s in rest["subjects"]] == ["bob"]

    alice = client.get("/collections/staff/subjects/alice", headers=AUTH).json()
    assert alice["faces_count"] == 2 and all("embedding" not in f for f in alice["faces"])
    for stored in alice["faces"]:  # issue 20: the face's landmarks and quality are stored with it
        x1, y1, x2, y2 = stored["bbox"]
        assert len(stored["landmarks"]) == 5
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in stored["landmarks"])
        assert set(stored["quality"]) == {"level", "score", "reasons"}
        assert stored["quality"]["level"] in ("low", "medium", "high") and 0 <= stored["quality"]["score"] <= 1
    with_vectors = client.get("/collections/staff/subjects/alice?include=embeddings", headers=AUTH).json()
    assert all(len(f["embedding"]) == 512 for f in with_vectors["faces"])

    search = client.post("/collections/staff/search", headers=AUTH, json={"image_base64": random_image(2)})
    result = search.json()["results"][0]
    assert result["matches"][0]["external_id"] == "alice" and result["matches"][0]["similarity"] == pytest.approx(1.0)
    assert result["decision"] == {"match": True, "external_id": "alice", "similarity": 1.0, "threshold": 0.5}
    assert search.json()["method"] == "exact" and search.json()["searched_faces"] == 3

    verify = client.post("/collections/staff/subjects/bob/verify", headers=AUTH, json={"image_base64": random_image(1)})
    assert verify.status_code == 200 and verify.json()["match"] is False

    face_id = alice["faces"][0]["face_id"]
    assert client.delete(f"/collections/staff/faces/{face_id}", headers=AUTH).json()["external_id"] == "alice"
    gone = client.delete("/collections/staff/subjects/bob", headers=AUTH).json()
    assert gone == {"external_id": "bob", "deleted_faces": 1}
    missing = client.get("/collections/staff/subjects/bob", headers=AUTH)
    assert (missing.status_code, missing.json()["code"]) == (404, "subject_not_found")
    assert client.get("/collections/staff", headers=AUTH).json()["faces"] == 1
    assert client.delete("/collections/staff", headers=AUTH).status_code == 204
    assert client.get("/collections/staff", headers=AUTH).json()["code"] == "collection_not_found"


def test_export_and_import_move_a_gallery_between_stores(gallery_client: Client) -> None:
    client = gallery_client
    client.post("/collections", headers=AUTH, json={"name": "source"})
    for subject, seed in (("a", 1), ("a", 2), ("b", 3)):
        enroll(client, "source", subject, random_image(seed))
    client.post(
        "/collections/source/subjects/c/faces",
        headers=AUTH,
        json={"embedding": [1.0] + [0.0] * 511, "model": "fake:00000000"},
    )
    exported = client.get("/collections/source/export", headers=AUTH)
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert lines[0]["type"] == "collection" and lines[0]["model"] == "fake:00000000" and len(lines) == 5
    assert all(len(line["landmarks"]) == 5 and line["quality"]["level"] for line in lines[1:4])
    assert (lines[4]["landmarks"], lines[4]["quality"]) == (None, None)  # enrolled from an embedding
    source_a = client.get("/collections/source/subjects/a", headers=AUTH).json()["faces"]
    with make_client(settings_for("fake", GALLERY_STORE="memory")) as other:
        headers = {**AUTH, "Content-Type": "application/x-ndjson"}
        imported = other.post("/collections/copy/import", headers=headers, content=exported.content)
        assert imported.json() == {"collection": "copy", "imported": 4}
        copied_a = other.get("/collections/copy/subjects/a", headers=AUTH).json()["faces"]
        assert [(f["landmarks"], f["quality"]) for f in copied_a] == [(f["landmarks"], f["quality"]) for f in source_a]
        assert "landmarks" not in other.get("/collections/copy/subjects/c", headers=AUTH).json()["faces"][0]
        # An export of a release that kept neither imports unchanged.
        older = [lines[0]] + [
            {k: v for k, v in line.items() if k not in ("landmarks", "quality")} for line in lines[1:]
        ]
        body = "\n".join(json.dumps(line) for line in older).encode()
        assert other.post("/collections/older/import", headers=headers, content=body).json()["imported"] == 4
        assert "quality" not in other.get("/collections/older/subjects/a", headers=AUTH).json()["faces"][0]
        broken = json.dumps({**lines[1], "landmarks": [[1, 2]]}).encode()
        refused = other.post(
            "/collections/older/import", headers=headers, content=exported.content.split(b"\n")[0] + b"\n" + broken
        )
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_import")
        assert other.post("/collections/copy/import", headers=headers, content=exported.content).json()["imported"] == 0
        search = other.post("/collections/copy/search?top_k=1", headers=AUTH, json={"image_base64": random_image(3)})
        assert search.json()["results"][0]["decision"]["external_id"] == "b"
        foreign = exported.text.replace("fake:00000000", "buffalo_l:12345678", 1).encode()
        refused = other.post("/collections/copy/import", headers=headers, content=foreign)
        assert (refused.status_code, refused.json()["code"]) == (409, "model_mismatch")


def test_codes_for_bad_names_models_and_limits(gallery_client: Client) -> None:
    client = gallery_client
    assert (
        client.post("/collections", headers=AUTH, json={"name": "../etc"}).json()["code"] == "invalid_collection_name"
    )
    client.post("/collections", headers=AUTH, json={"name": "c"})
    bad_subject = enroll(client, "c", "a%2Fb", random_image(1))
    assert bad_subject.status_code in (400, 404)
    unit = [1.0] + [0.0] * 511
    mismatch = client.post(
        "/collections/c/subjects/x/faces", headers=AUTH, json={"embedding": unit, "model": "buffalo_l:12345678"}
    )
    assert (mismatch.status_code, mismatch.json()["code"]) == (409, "model_mismatch")
    by_vector = client.post(
        "/collections/c/subjects/x/faces", headers=AUTH, json={"embedding": unit, "model": "fake:00000000"}
    )
    assert by_vector.status_code == 201 and "bbox" not in by_vector.json()
    flat = base64.b64encode(encode_png(np.full((64, 64, 3), 9, np.uint8))).decode()
    assert enroll(client, "c", "x", flat).json()["code"] == "no_face"
    for seed in (11, 12):
        assert enroll(client, "c", "x", random_image(seed)).status_code == 201
    full = enroll(client, "c", "x", random_image(13))
    assert (full.status_code, full.json()["code"]) == (409, "subject_face_limit")
    assert client.post("/collections/nope/search", headers=AUTH, json={"image_base64": flat}).status_code == 404
    top = client.post("/collections/c/search?top_k=101", headers=AUTH, json={"image_base64": random_image(11)})
    assert top.status_code == 400


def test_names_and_ids_with_a_trailing_newline_are_refused(gallery_client: Client) -> None:
    """`re.match` with `$` let "acme\n" live beside "acme" (and its export drop the connection)."""
    client = gallery_client
    refused = client.post("/collections", headers=AUTH, json={"name": "acme\n"})
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_collection_name")
    assert client.post("/collections", headers=AUTH, json={"name": "acme"}).status_code == 201
    for subject in ("u-1%0A", "u-1%0D%0A", "u-1%20"):
        answer = enroll(client, "acme", subject, random_image(1))
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_external_id"), subject
    assert client.get("/collections/acme%0A", headers=AUTH).json()["code"] == "invalid_collection_name"
    assert [c["name"] for c in client.get("/collections", headers=AUTH).json()["collections"]] == ["acme"]
    assert client.get("/collections/acme", headers=AUTH).json()["subjects"] == 0


def test_dot_segments_and_trailing_slashes_never_reach_another_resource(gallery_client: Client) -> None:
    """curl and fetch turn `/collections/c/subjects/..` into `/collections/c/`, which Litestar routed
    as the collection: a subject's delete deleted the collection."""
    client = gallery_client
    client.post("/collections", headers=AUTH, json={"name": "c"})
    face_id = enroll(client, "c", "alice", random_image(1)).json()["face_id"]
    for path in ("/collections/c/", "/collections/c//", "/collections/c/subjects/", "/collections/c/faces/"):
        answer = client.delete(path, headers=AUTH)
        assert (answer.status_code, answer.json()["code"]) == (404, "not_found"), path
    assert client.get("/collections/c/subjects/alice/", headers=AUTH).status_code == 404
    assert client.post("/collections/", headers=AUTH, json={"name": "d"}).status_code == 404
    # A client that does not rewrite them sends the dot segments as ids (percent-encoded here, since
    # httpx would rewrite them too): refused, whatever the method.
    for dots in ("%2E", "%2E%2E", ".%2E"):
        for answer in (
            client.delete(f"/collections/c/subjects/{dots}", headers=AUTH),
            client.get(f"/collections/c/subjects/{dots}", headers=AUTH),
            enroll(client, "c", dots, random_image(2)),
        ):
            assert (answer.status_code, answer.json()["code"]) == (400, "invalid_external_id"), dots
    for bad in ("%2E%2E", "not-a-face-id", face_id.upper()):
        answer = client.delete(f"/collections/c/faces/{bad}", headers=AUTH)
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_face_id"), bad
    info = client.get("/collections/c", headers=AUTH).json()
    assert (info["subjects"], info["faces"]) == (1, 1)
    assert client.delete(f"/collections/c/faces/{face_id}", headers=AUTH).status_code == 200


def corrupt_store(env: dict[str, str], statement: str) -> None:
    """Run `statement` on the store behind the service's back (it is not running)."""
    if env["GALLERY_STORE"] == "sqlite":
        import sqlite3

        with sqlite3.connect(Path(env["DATA_DIR"]) / "gallery.sqlite3") as db:
            db.execute(statement)
    else:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(statement.encode())


@pytest.mark.parametrize(
    ("store", "statement"),
    [
        ("sqlite", "UPDATE collections SET dimension = -5 WHERE name = 'broken'"),
        ("postgresql", "UPDATE gallery_collections SET threshold = 99 WHERE name = 'broken'"),
    ],
)
def test_the_service_starts_with_a_corrupt_collection_and_serves_the_others(
    store: str, statement: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if store == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        env = {"GALLERY_STORE": store, "DATABASE_URL": create_database(server, f"corrupt_{id(tmp_path) % 100000}")}
    else:
        env = {"GALLERY_STORE": store, "DATA_DIR": str(tmp_path / "data")}
    with make_client(settings_for("fake", **env)) as client:
        for name in ("good", "broken"):
            client.post("/collections", headers=AUTH, json={"name": name})
            enroll(client, name, "alice", random_image(1))
    corrupt_store(env, statement)
    with make_client(settings_for("fake", **env)) as client:  # a new start on the same store
        health = client.get("/health", headers=AUTH).json()["gallery"]
        assert health["ok"] is True and [c["name"] for c in health["collections"]] == ["good"]
        assert [q["name"] for q in health["quarantined"]] == ["broken"] and health["quarantined"][0]["reason"]
        assert [c["name"] for c in client.get("/collections", headers=AUTH).json()["collections"]] == ["good"]
        for answer in (
            client.get("/collections/broken", headers=AUTH),
            client.post("/collections/broken/search", headers=AUTH, json={"image_base64": random_image(1)}),
            client.get("/collections/broken/export", headers=AUTH),
            client.post("/collections", headers=AUTH, json={"name": "broken"}),
        ):
            assert (answer.status_code, answer.json()["code"]) == (503, "collection_unavailable"), answer.text
            assert "Retry-After" not in answer.headers  # it stays so until an operator acts
        search = client.post("/collections/good/search", headers=AUTH, json={"image_base64": random_image(1)})
        assert search.json()["results"][0]["decision"]["external_id"] == "alice"
        assert client.delete("/collections/broken", headers=AUTH).status_code == 204
        assert client.get("/health", headers=AUTH).json()["gallery"]["quarantined"] == []
    with make_client(settings_for("fake", **env)) as client:
        assert [c["name"] for c in client.get("/collections", headers=AUTH).json()["collections"]] == ["good"]


def test_store_errors_name_no_file_or_database(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """docs/api.md promises no path in an error: an unwritable DATA_DIR, a full disk, an unreachable
    PostgreSQL (by socket) answer store_unavailable without the file, the socket or the user."""
    blocked = tmp_path / "a-file"
    blocked.write_text("DATA_DIR cannot be made under a file")
    with make_client(settings_for("fake", GALLERY_STORE="sqlite", DATA_DIR=str(blocked / "data"))) as client:
        answer = client.get("/collections", headers=AUTH)
        assert (answer.status_code, answer.json()["code"]) == (503, "store_unavailable")
        assert str(tmp_path) not in answer.text and "/" not in answer.json()["error"]
        assert str(tmp_path) not in client.get("/health").text

    data = tmp_path / "data"
    container = bootstrap(settings_for("fake", GALLERY_STORE="sqlite", DATA_DIR=str(data)))
    with make_client(container.settings(), container) as client:
        client.post("/collections", headers=AUTH, json={"name": "c"})
        gallery: Any = container.gallery()
        pages = gallery._db.execute("PRAGMA page_count").fetchone()[0]
        gallery._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
        answers = [enroll(client, "c", f"s{i}", random_image(i)) for i in range(40)]
        full = [answer for answer in answers if answer.status_code == 503]
        assert full and all(answer.json()["code"] == "store_unavailable" for answer in full)
        assert all(str(data) not in answer.text and "sqlite3" not in answer.text for answer in full)
        assert str(data) not in client.get("/health").text

    url = "postgresql://nobody:hunter2@/none?host=/tmp/no-such-socket-dir&connect_timeout=2"
    with make_client(settings_for("fake", DATABASE_URL=url)) as client:
        for answer in (client.get("/collections", headers=AUTH), client.get("/health")):
            assert "nobody" not in answer.text and "hunter2" not in answer.text
            assert "no-such-socket" not in answer.text and ".s.PGSQL" not in answer.text


def test_concurrent_enrollments_into_one_subject_neither_lose_nor_duplicate(gallery_client: Client) -> None:
    client = gallery_client
    client.post("/collections", headers=AUTH, json={"name": "race"})
    images = [random_image(100 + i % 3) for i in range(12)]  # 3 distinct images, each sent 4 times
    statuses: list[int] = []

    def send(image: str) -> None:
        statuses.append(enroll(client, "race", "same", image).status_code)

    threads = [threading.Thread(target=send, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(201) == 3 and statuses.count(200) == 9
    assert client.get("/collections/race/subjects/same", headers=AUTH).json()["faces_count"] == 3


def test_a_store_that_is_down_answers_503_while_face_routes_work(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:9/none"  # nothing listens on the discard port
    with make_client(settings_for("fake", DATABASE_URL=url)) as client:
        refused = client.get("/collections", headers=AUTH)
        assert (refused.status_code, refused.json()["code"]) == (503, "store_unavailable")
        assert "nobody" not in refused.text  # the URL's credentials never reach a caller
        assert client.post("/extract-embedding", headers=AUTH, json={"image_base64": b64(SELFIE)}).status_code == 200
        health = client.get("/health", headers=AUTH).json()
        assert health["gallery"]["store"] == "postgresql" and health["gallery"]["ok"] is False


@pytest.mark.real_model
def test_identify_a_person_with_the_real_models(real_client: Client) -> None:
    client = real_client
    client.post("/collections", headers=AUTH, json={"name": "players"})
    assert enroll(client, "players", "yao-ming", b64(SELFIE)).status_code == 201
    (stored,) = client.get("/collections/players/subjects/yao-ming", headers=AUTH).json()["faces"]
    x1, y1, x2, y2 = stored["bbox"]
    left_eye, right_eye, nose, _, _ = stored["landmarks"]
    assert x1 < left_eye[0] < nose[0] < right_eye[0] < x2 and y1 < left_eye[1] < nose[1] < y2
    assert stored["quality"]["level"] == "high" and stored["quality"]["reasons"] == []
    several = enroll(client, "players", "trio", b64(TRIO_PHOTO))
    assert (several.status_code, several.json()["code"]) == (422, "multiple_faces")
    largest = client.post(
        "/collections/players/subjects/trio/faces?face=largest&min_face_size=20",
        headers=AUTH,
        json={"image_base64": b64(TRIO_PHOTO)},
    )
    # Its largest face is turned about 50 degrees away: below the default quality floor (medium).
    assert (largest.status_code, largest.json()["code"]) == (422, "low_quality_face")
    assert largest.json()["reasons"][0] == "EXTREME_POSE"
    largest = client.post(
        "/collections/players/subjects/trio/faces?face=largest&min_face_size=20&quality=none",
        headers=AUTH,
        json={"image_base64": b64(TRIO_PHOTO)},
    )
    assert largest.status_code == 201
    tiny = client.post(
        "/collections/players/subjects/group/faces?face=largest&min_face_size=2000",
        headers=AUTH,
        json={"image_base64": b64(GROUP_PHOTO)},
    )
    assert (tiny.status_code, tiny.json()["code"]) == (422, "face_too_small")

    team = client.post("/collections/players/search?top_k=1", headers=AUTH, json={"image_base64": b64(TEAM_PHOTO)})
    results = team.json()["results"]
    matched = [r for r in results if r["decision"]["match"]]
    assert [r["decision"]["external_id"] for r in matched] == ["yao-ming"]  # one face of the team is his
    assert matched[0]["decision"]["similarity"] > 0.5
    assert max(r["matches"][0]["similarity"] for r in results if not r["decision"]["match"]) < 0.4

    same = client.post(
        "/collections/players/subjects/yao-ming/verify", headers=AUTH, json={"image_base64": b64(SELFIE)}
    )
    assert same.json()["match"] is True and same.json()["similarity"] == pytest.approx(1.0, abs=1e-4)
    client.delete("/collections/players", headers=AUTH)


@pytest.mark.real_model
def test_acknowledged_enrollments_survive_sigkill(tmp_path: Path) -> None:
    """A served SQLite gallery killed (SIGKILL) in the middle of an enrollment loop: every face that
    was answered 201 is there after a restart, and nothing half-written."""
    env = {"API_KEY": BENCH_KEY, "FACE_BACKEND": "fake", "DATA_DIR": str(tmp_path), "GALLERY_STORE": "sqlite"}
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    process, base, _ = start_service(env)
    acknowledged: list[str] = []
    try:
        httpx.post(f"{base}/collections", headers=headers, json={"name": "k"}, timeout=30)

        def loop() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for i in range(400):
                    try:
                        answer = client.post(
                            f"/collections/k/subjects/s{i % 7}/faces", json={"image_base64": random_image(i)}
                        )
                    except httpx.TransportError:
                        return
                    if answer.status_code == 201:
                        acknowledged.append(answer.json()["face_id"])

        enrolling = threading.Thread(target=loop)
        enrolling.start()
        while len(acknowledged) < 15:
            assert enrolling.is_alive()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        enrolling.join()
    finally:
        if process.poll() is None:
            process.kill()
    restarted, base, _ = start_service(env)
    try:
        stored: set[str] = set()
        for i in range(7):
            subject = httpx.get(f"{base}/collections/k/subjects/s{i}", headers=headers, timeout=30)
            if subject.status_code == 200:
                stored |= {face["face_id"] for face in subject.json()["faces"]}
        assert set(acknowledged) <= stored
        info = httpx.get(f"{base}/collections/k", headers=headers, timeout=30).json()
        assert info["faces"] == len(stored) and len(stored) - len(acknowledged) <= 1  # one may be in flight
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
