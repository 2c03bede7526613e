"""Photos with the real models, on SQLite and on PostgreSQL (issue 21's "done when"): the bundled
team, group and trio photos indexed into one collection, Yao Ming's selfie finds exactly the team
photo, and deleting it removes its faces from search, the export and the store's files or rows."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from tests.support.pg import PostgresServer, create_database
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO, b64
from tests.support.services import AUTH, make_client, settings_for

PHOTOS = (TEAM_PHOTO, GROUP_PHOTO, TRIO_PHOTO)


def exported_vectors(client: TestClient[Any]) -> dict[str, list[bytes]]:
    """Each photo's face vectors (little-endian float32 bytes, as stored) from the export."""
    lines = [json.loads(line) for line in client.get("/collections/events/export", headers=AUTH).text.splitlines()]
    found: dict[str, list[bytes]] = {}
    for line in lines[1:]:
        found.setdefault(line["photo_id"], []).append(base64.b64decode(line["embedding"]))
    return found


@pytest.mark.real_model
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_selfie_finds_exactly_the_photo_its_person_is_in_and_a_deleted_photo_is_gone(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    url = ""
    if store == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"photos_real_{uuid.uuid4().hex[:8]}")
        env = {"GALLERY_STORE": "postgresql", "DATABASE_URL": url}
    else:
        env = {"GALLERY_STORE": "sqlite", "DATA_DIR": str(data_dir)}
    with make_client(settings_for("insightface", **env)) as client:
        assert client.post("/collections", headers=AUTH, json={"name": "events"}).status_code == 201
        indexed = {}
        for path in PHOTOS:
            answer = client.post(
                f"/collections/events/photos/{path.name}", headers=AUTH, json={"image_base64": b64(path)}
            )
            assert answer.status_code == 201, answer.text
            indexed[path.name] = answer.json()
        team = indexed[TEAM_PHOTO.name]
        # The team photo's 22 faces: most indexed, the blurred or turned ones unindexed with reasons.
        assert len(team["faces"]) >= 10 and len(team["faces"]) + len(team["unindexed"]) == 22
        assert all(face["reasons"][0] == "LOW_QUALITY" for face in team["unindexed"])
        assert all(indexed[path.name]["faces"] for path in PHOTOS)
        again = client.post(
            f"/collections/events/photos/{TEAM_PHOTO.name}", headers=AUTH, json={"image_base64": b64(TEAM_PHOTO)}
        )
        assert again.status_code == 200 and again.json()["duplicate"] is True

        found = client.post("/collections/events/search/photos", headers=AUTH, json={"image_base64": b64(SELFIE)})
        assert found.status_code == 200, found.text
        result = found.json()
        assert [p["photo_id"] for p in result["photos"]] == [TEAM_PHOTO.name] and result["count"] == 1
        (best,) = result["photos"]
        assert best["match"] is True and best["similarity"] > 0.5 and best["external_id"] is None
        face_ids = {face["face_id"]: face["bbox"] for face in team["faces"]}
        assert face_ids[best["face_id"]] == best["bbox"]  # the face of Yao Ming, #13, top row
        everything = client.post(
            "/collections/events/search/photos?min_similarity=-1",
            headers=AUTH,
            json={"image_base64": b64(SELFIE)},
        ).json()
        assert everything["photos"][0]["photo_id"] == TEAM_PHOTO.name and everything["count"] == 3
        assert max(p["similarity"] for p in everything["photos"][1:]) < 0.3  # the others: nobody like him

        before = exported_vectors(client)
        doomed = before[TEAM_PHOTO.name]
        assert len(doomed) == len(team["faces"])
        deleted = client.delete(f"/collections/events/photos/{TEAM_PHOTO.name}", headers=AUTH).json()
        assert deleted == {"photo_id": TEAM_PHOTO.name, "deleted_faces": len(team["faces"])}

        gone = client.post("/collections/events/search/photos", headers=AUTH, json={"image_base64": b64(SELFIE)})
        assert gone.json()["photos"] == [] and gone.json()["count"] == 0
        after = exported_vectors(client)
        assert TEAM_PHOTO.name not in after and after.keys() == {GROUP_PHOTO.name, TRIO_PHOTO.name}
        info = client.get("/collections/events", headers=AUTH).json()
        assert info["photos"] == 2 and info["faces"] == sum(len(v) for v in after.values())

        if store == "sqlite":
            files = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file() and ".sqlite" in p.name)
            assert files, "the gallery's files"
            assert all(vector not in files for vector in doomed)
            assert all(vector in files for vectors in after.values() for vector in vectors)  # the scan finds them
        else:
            with psycopg.connect(url) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM gallery_faces WHERE face_id = ANY(%s)", (list(face_ids),)
                ).fetchone()
                photos = conn.execute("SELECT count(*) FROM gallery_photos WHERE photo_id = %s", (TEAM_PHOTO.name,))
                assert rows == (0,) and photos.fetchone() == (0,)
