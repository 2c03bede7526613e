"""People with the real models, on SQLite and on PostgreSQL (issue 22's "done when"): the bundled
team, group and trio photos and Yao Ming's selfie indexed as photos, a re-cluster groups exactly
Yao Ming's two faces (the only person in two of them) into one person, naming it makes a subject,
and a smaller, recompressed copy of the selfie finds that subject by subject search; deleting the
person then takes its faces out of photo search, subject search, export and the people lists."""

from __future__ import annotations

import base64
import io
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image

from tests.support.pg import PostgresServer, create_database
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO, b64
from tests.support.services import AUTH, make_client, settings_for

PHOTOS = (TEAM_PHOTO, GROUP_PHOTO, TRIO_PHOTO, SELFIE)


def smaller_selfie() -> str:
    """The selfie at half its size, as a JPEG of quality 70: another image of the same person."""
    image = Image.open(SELFIE).convert("RGB")
    image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return base64.b64encode(buffer.getvalue()).decode()


def reclustered(client: TestClient[Any]) -> dict[str, Any]:
    assert client.post("/collections/events/clustering", headers=AUTH).status_code == 202
    for _ in range(600):
        job = client.get("/collections/events/clustering", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError("the re-cluster did not finish in 30 s")


@pytest.mark.real_model
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_recluster_finds_the_one_person_in_two_photos_naming_it_makes_a_subject_and_deleting_it_forgets_it(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if store == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"people_real_{uuid.uuid4().hex[:8]}")
        env = {"GALLERY_STORE": "postgresql", "DATABASE_URL": url}
    else:
        env = {"GALLERY_STORE": "sqlite", "DATA_DIR": str(tmp_path / "data")}
    with make_client(settings_for("insightface", **env)) as client:
        assert client.post("/collections", headers=AUTH, json={"name": "events"}).status_code == 201
        for path in PHOTOS:
            answer = client.post(
                f"/collections/events/photos/{path.name}", headers=AUTH, json={"image_base64": b64(path)}
            )
            assert answer.status_code == 201, answer.text

        job = reclustered(client)
        assert job["state"] == "done" and job["faces"] >= 20, job
        assert (job["people"], job["assigned"]) == (1, 2), job  # every other face is someone seen once
        (person,) = client.get("/collections/events/people", headers=AUTH).json()["people"]
        photos = client.get(f"/collections/events/people/{person['person_id']}/photos", headers=AUTH).json()
        assert [p["photo_id"] for p in photos["photos"]] == [TEAM_PHOTO.name, SELFIE.name]

        named = client.post(
            f"/collections/events/people/{person['person_id']}/name", headers=AUTH, json={"external_id": "yao-ming"}
        )
        assert named.status_code == 200 and named.json()["labelled_faces"] == 2, named.text
        found = client.post("/collections/events/search", headers=AUTH, json={"image_base64": smaller_selfie()})
        assert found.status_code == 200, found.text
        (result,) = found.json()["results"]
        assert result["matches"][0]["external_id"] == "yao-ming", found.text
        assert (result["decision"]["match"], result["decision"]["external_id"]) == (True, "yao-ming"), found.text

        # Forget the person: its faces leave every search, the export and the people lists.
        face_ids = [face["face_id"] for face in photos_faces(photos)]
        deleted = client.delete(f"/collections/events/people/{person['person_id']}", headers=AUTH)
        assert deleted.status_code == 200 and deleted.json()["deleted_faces"] == 2, deleted.text
        assert client.get("/collections/events/people", headers=AUTH).json()["people"] == []
        assert client.get("/collections/events/subjects/yao-ming", headers=AUTH).status_code == 404
        probe = {"image_base64": smaller_selfie()}
        in_photos = client.post("/collections/events/search/photos", headers=AUTH, json=probe).json()
        assert in_photos["count"] == 0, in_photos  # the team photo and the selfie held Yao Ming's faces only
        close = client.post("/collections/events/search/photos?min_similarity=-1&top_k=100", headers=AUTH, json=probe)
        assert {hit["face_id"] for hit in close.json()["photos"]}.isdisjoint(face_ids)
        assert {hit["photo_id"] for hit in close.json()["photos"]} == {
            TEAM_PHOTO.name,
            GROUP_PHOTO.name,
            TRIO_PHOTO.name,
        }
        assert client.post("/collections/events/search", headers=AUTH, json=probe).json()["results"][0]["matches"] == []
        export = client.get("/collections/events/export", headers=AUTH).text
        assert all(face_id not in export for face_id in face_ids) and len(export.splitlines()) == job["faces"] - 1
        again = client.post(
            f"/collections/events/photos/{SELFIE.name}", headers=AUTH, json={"image_base64": b64(SELFIE)}
        )
        assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["faces"] == [], (
            again.text
        )


@pytest.mark.real_model
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_not_this_person_on_a_named_face_outlives_a_recluster(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Yao Ming's person named, then its team-photo face refused (as a user would a wrong face): that
    face leaves the subject at once, and the re-cluster after keeps it out of the person (before, the
    subject's faces started as one group and brought it back)."""
    if store == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"people_refuse_{uuid.uuid4().hex[:8]}")
        env = {"GALLERY_STORE": "postgresql", "DATABASE_URL": url}
    else:
        env = {"GALLERY_STORE": "sqlite", "DATA_DIR": str(tmp_path / "data")}
    with make_client(settings_for("insightface", **env)) as client:
        assert client.post("/collections", headers=AUTH, json={"name": "events"}).status_code == 201
        for path in PHOTOS:
            answer = client.post(
                f"/collections/events/photos/{path.name}", headers=AUTH, json={"image_base64": b64(path)}
            )
            assert answer.status_code == 201, answer.text
        assert reclustered(client)["people"] == 1
        (person,) = client.get("/collections/events/people", headers=AUTH).json()["people"]
        people_path = f"/collections/events/people/{person['person_id']}"
        photos = client.get(f"{people_path}/photos", headers=AUTH).json()["photos"]
        by_photo = {photo["photo_id"]: photo["faces"][0]["face_id"] for photo in photos}
        named = client.post(f"{people_path}/name", headers=AUTH, json={"external_id": "yao-ming"})
        assert named.json()["labelled_faces"] == 2, named.text

        refused = client.post(
            f"{people_path}/not-this-person", headers=AUTH, json={"face_id": by_photo[TEAM_PHOTO.name]}
        )
        assert refused.status_code == 200 and refused.json()["person"]["faces"] == 1, refused.text
        subject = client.get("/collections/events/subjects/yao-ming", headers=AUTH).json()
        assert [face["face_id"] for face in subject["faces"]] == [by_photo[SELFIE.name]]
        team = client.get(f"/collections/events/photos/{TEAM_PHOTO.name}", headers=AUTH).json()["faces"]
        assert all(face["external_id"] is None for face in team)

        job = reclustered(client)
        assert (job["people"], job["assigned"]) == (1, 1), job  # the named selfie face alone
        after = client.get(f"{people_path}/photos", headers=AUTH).json()["photos"]
        assert [photo["photo_id"] for photo in after] == [SELFIE.name]


def photos_faces(photos: dict[str, Any]) -> list[dict[str, Any]]:
    return [face for photo in photos["photos"] for face in photo["faces"]]
