"""People with the real models, on SQLite and on PostgreSQL (issue 22's "done when"): the bundled
team, group and trio photos and Yao Ming's selfie indexed as photos, a re-cluster groups exactly
Yao Ming's two faces (the only person in two of them) into one person, naming it makes a subject,
and a smaller, recompressed copy of the selfie finds that subject by subject search."""

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
def test_a_recluster_finds_the_one_person_in_two_photos_and_naming_it_makes_a_searchable_subject(
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
