"""The `face-service` command's collection verbs, locally and with --url against a running service
(`face-service serve` started as a process, as the README has it), and its --help."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from app.cli import build_parser
from bench.load import free_port
from tests.e2e.test_end_to_end import COMMAND, start, stop, stopped_cleanly, wait_healthy
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO
from tests.support.services import API_KEY

CLIENT_VARIABLES = ("FACE_SERVICE_URL", "FACE_SERVICE_API_KEY", "API_KEY", "API_KEYS")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`face-service ARGS` with only these client variables set."""
    environment = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES} | env
    return subprocess.run([COMMAND, *args], env=environment, capture_output=True, text=True, timeout=180)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from ((f"{name} {sub}", grandchild) for sub, grandchild in subparsers(child))


def test_every_option_and_argument_in_help_has_a_description() -> None:
    parsers = list(subparsers(build_parser()))
    assert {"serve", "embed", "collections create", "collections delete", "enroll", "search", "import"} <= {
        name for name, _ in parsers
    }
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name}: {action.dest} has no description"
        if name.split()[0] in (
            "collections",
            "enroll",
            "search",
            "export",
            "import",
            "photos",
            "people",
        ) and name not in (
            "collections",
            "photos",
            "people",
        ):
            assert "--url" in parser.format_help(), f"{name}: no --url"


# ----- against a running service (SQLite in its DATA_DIR, the real models)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("gallery")
    port = free_port()
    process = start({"API_KEY": API_KEY, "DATA_DIR": str(data)}, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url)
        yield url, data
    finally:
        code, output = stop(process)
        assert stopped_cleanly(code, output), output


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """A folder of subject folders: yao-ming with his photo, nobody with a flat grey image (no face)."""
    (tmp_path / "people" / "yao-ming").mkdir(parents=True)
    (tmp_path / "people" / "nobody").mkdir()
    shutil.copy(SELFIE, tmp_path / "people" / "yao-ming" / "yao.jpg")
    ok, blank = cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))
    assert ok
    (tmp_path / "people" / "nobody" / "blank.png").write_bytes(blank.tobytes())
    return tmp_path / "people"


@pytest.mark.real_model
def test_locally_the_store_a_service_holds_is_refused_with_the_way_round(service: tuple[str, Path]) -> None:
    _, data = service
    result = cli("collections", "list", DATA_DIR=str(data), API_KEY=API_KEY)
    assert result.returncode == 3
    assert "is open in another process" in result.stderr
    assert "--url http://HOST:PORT" in result.stderr and "FACE_SERVICE_API_KEY" in result.stderr


@pytest.mark.real_model
def test_every_collection_verb_over_http(service: tuple[str, Path], people: Path, tmp_path: Path) -> None:
    url, _ = service
    key = {"FACE_SERVICE_API_KEY": API_KEY}
    created = cli("collections", "create", "players", "--threshold", "0.45", "--url", url, **key)
    assert created.returncode == 0, created.stderr
    (collection,) = lines(created.stdout)
    assert (collection["name"], collection["threshold"], collection["faces"]) == ("players", 0.45, 0)
    assert collection["model"].startswith("buffalo_s:")

    enrolled = cli("enroll", "players", str(people), "--url", url, **key)
    assert enrolled.returncode == 1, "one image had no face"
    nobody, yao = lines(enrolled.stdout)
    assert (Path(nobody["file"]).name, nobody["code"]) == ("blank.png", "no_face")
    assert (Path(yao["file"]).name, yao["external_id"], yao["duplicate"]) == ("yao.jpg", "yao-ming", False)

    # FACE_SERVICE_URL instead of --url; the key from API_KEY
    found = cli("search", "players", str(TEAM_PHOTO), "--top-k", "1", FACE_SERVICE_URL=url, API_KEY=API_KEY)
    assert found.returncode == 0, found.stderr
    results = lines(found.stdout)[0]["results"]
    matched = [index for index, result in enumerate(results) if result["decision"]["match"]]
    assert matched == [3] and results[3]["decision"]["external_id"] == "yao-ming"

    export = tmp_path / "players.jsonl"
    exported = cli("export", "players", "-o", str(export), "--url", url, **key)
    assert exported.returncode == 0, exported.stderr
    header, face = lines(export.read_text())
    assert header["name"] == "players" and face["external_id"] == "yao-ming"
    imported = cli("import", "players-copy", str(export), "--url", url, **key)
    assert imported.returncode == 0, imported.stderr
    assert lines(imported.stdout) == [{"collection": "players-copy", "imported": 1}]

    listed = cli("collections", "list", "--url", url, **key)
    assert [c["name"] for c in lines(listed.stdout)] == ["players", "players-copy"]
    for name in ("players", "players-copy"):
        deleted = cli("collections", "delete", name, "--url", url, **key)
        assert deleted.returncode == 0, deleted.stderr
        assert lines(deleted.stdout) == [{"name": name, "deleted_subjects": 1, "deleted_faces": 1}]
    assert lines(cli("collections", "list", "--url", url, **key).stdout) == []
    gone = cli("search", "players", str(SELFIE), "--url", url, **key)
    assert gone.returncode == 3 and "HTTP 404 collection_not_found" in gone.stderr


@pytest.mark.real_model
def test_over_http_a_refused_key_a_missing_key_and_no_service_say_so(service: tuple[str, Path]) -> None:
    url, _ = service
    refused = cli("collections", "list", "--url", url, FACE_SERVICE_API_KEY="wrong-key-0123456789")
    assert refused.returncode == 3 and "HTTP 401 unauthorized" in refused.stderr
    keyless = cli("collections", "list", "--url", url)
    assert keyless.returncode == 3 and "FACE_SERVICE_API_KEY or API_KEY" in keyless.stderr
    nowhere = cli("collections", "list", "--url", f"http://127.0.0.1:{free_port()}", API_KEY=API_KEY)
    assert nowhere.returncode == 3 and "could not be reached" in nowhere.stderr
    assert refused.stdout == keyless.stdout == nowhere.stdout == ""


# ----- the same lines locally and over HTTP (the fake backend: no models; SQLite in a folder)


def test_local_and_http_verbs_print_the_same_lines(tmp_path: Path) -> None:
    store = {"FACE_BACKEND": "fake", "GALLERY_STORE": "sqlite", "DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start({"API_KEY": API_KEY, **store}, port)
    try:
        wait_healthy(process, url)
        for name in ("a", "b"):
            assert cli("collections", "create", name, "--url", url, API_KEY=API_KEY).returncode == 0
        over_http = cli("collections", "list", "--url", url, API_KEY=API_KEY).stdout
        deleted_over_http = cli("collections", "delete", "a", "--url", url, API_KEY=API_KEY).stdout
    finally:
        code, output = stop(process)
        assert stopped_cleanly(code, output), output
    assert len(lines(over_http)) == 2
    local = cli("collections", "list", API_KEY=API_KEY, **store)
    assert local.returncode == 0, local.stderr
    assert local.stdout == "".join(line + "\n" for line in over_http.splitlines() if '"name":"a"' not in line)
    deleted_here = cli("collections", "delete", "b", API_KEY=API_KEY, **store)
    assert deleted_here.returncode == 0, deleted_here.stderr
    assert deleted_here.stdout == deleted_over_http.replace('"a"', '"b"')
    assert lines(deleted_here.stdout) == [{"name": "b", "deleted_subjects": 0, "deleted_faces": 0}]
    assert cli("collections", "list", API_KEY=API_KEY, **store).stdout == ""


# ----- photos index|search|list|delete (issue 21), over HTTP and here, on the real models


@pytest.fixture
def event_photos(tmp_path: Path) -> Path:
    """The three group photos (one in a subfolder) and a corrupt JPEG."""
    folder = tmp_path / "event"
    (folder / "trio").mkdir(parents=True)
    shutil.copy(TEAM_PHOTO, folder / "players.jpg")
    shutil.copy(GROUP_PHOTO, folder / "t1.jpg")
    shutil.copy(TRIO_PHOTO, folder / "trio" / "gdp.jpg")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    return folder


def summary_of(output: str) -> dict[str, Any]:
    *_, last = lines(output)
    summary: dict[str, Any] = last["summary"]
    return summary


def check_photo_runs(event_photos: Path, photos: Any) -> None:
    """Index the folder (one corrupt file: a failure, exit 1), run it again without the corrupt file
    (everything skipped, exit 0), then find Yao Ming's selfie in players.jpg only."""
    first = photos("index", "events", str(event_photos), "--json")
    assert first.returncode == 1, first.stderr
    *records, summary = lines(first.stdout)
    by_id = {record["photo_id"]: record for record in records}
    assert set(by_id) == {"corrupt.jpg", "players.jpg", "t1.jpg", "trio:gdp.jpg"}
    corrupt = by_id.pop("corrupt.jpg")
    assert corrupt["code"] in ("invalid_image", "unsupported_image_format") and corrupt["file"].endswith("corrupt.jpg")
    faces = {photo: len(record["faces"]) for photo, record in by_id.items()}
    found = {photo: faces[photo] + len(record["unindexed"]) for photo, record in by_id.items()}
    assert found == {"players.jpg": 22, "t1.jpg": 6, "trio:gdp.jpg": 5}, "every face detected is indexed or unindexed"
    assert faces["players.jpg"] >= 10 and all(faces.values()), faces
    assert all(record["duplicate"] is False for record in by_id.values())
    assert summary["summary"]["indexed"] == 3 and summary["summary"]["faces"] == sum(faces.values())
    assert summary["summary"]["failures"] == {corrupt["code"]: 1} and summary["summary"]["skipped"] == 0
    unindexed = sum(len(record["unindexed"]) for record in by_id.values())
    assert summary["summary"]["unindexed_faces"] == sum(summary["summary"]["unindexed"].values()) == unindexed

    (event_photos / "corrupt.jpg").unlink()
    again = photos("index", "events", str(event_photos))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "indexed 0 photo(s), 0 face(s) in " in again.stdout and "skipped 3 photo(s)" in again.stdout

    found = photos("search", "events", str(SELFIE), "--json")
    assert found.returncode == 0, found.stderr
    (answer,) = lines(found.stdout)
    assert [photo["photo_id"] for photo in answer["photos"]] == ["players.jpg"]
    assert answer["photos"][0]["match"] is True and answer["count"] == 1
    as_text = photos("search", "events", str(SELFIE))
    assert as_text.stdout.startswith("players.jpg\t") and len(as_text.stdout.splitlines()) == 1

    listed = photos("list", "events")
    assert [photo["photo_id"] for photo in lines(listed.stdout)] == ["players.jpg", "t1.jpg", "trio:gdp.jpg"]
    deleted = photos("delete", "events", "trio:gdp.jpg", "nothing.jpg")
    assert deleted.returncode == 1
    gone, missing = lines(deleted.stdout)
    assert gone == {"photo_id": "trio:gdp.jpg", "deleted_faces": faces["trio:gdp.jpg"]}
    assert missing["code"] == "photo_not_found"
    assert [photo["photo_id"] for photo in lines(photos("list", "events").stdout)] == ["players.jpg", "t1.jpg"]


@pytest.mark.real_model
def test_photos_over_http(service: tuple[str, Path], event_photos: Path) -> None:
    url, _ = service
    key = {"FACE_SERVICE_API_KEY": API_KEY}
    assert cli("collections", "create", "events", "--url", url, **key).returncode == 0

    def photos(*args: str) -> subprocess.CompletedProcess[str]:
        return cli("photos", *args, "--url", url, **key)

    check_photo_runs(event_photos, photos)
    assert cli("collections", "delete", "events", "--url", url, **key).returncode == 0


@pytest.mark.real_model
def test_photos_here_without_a_service(event_photos: Path, tmp_path: Path) -> None:
    """The same runs in this process, on a SQLite store of its own (the models loaded by each command)."""
    store = {"DATA_DIR": str(tmp_path / "data"), "API_KEY": API_KEY}
    assert cli("collections", "create", "events", **store).returncode == 0

    def photos(*args: str) -> subprocess.CompletedProcess[str]:
        return cli("photos", *args, **store)

    check_photo_runs(event_photos, photos)


# ----- people cluster|list|name|merge|split|not-this-person|delete (issue 22), over HTTP and here, on the real models


def check_people_runs(folder: Path, run: Any) -> None:
    """Index the three group photos and Yao Ming's selfie, re-cluster (waiting, its progress on stderr):
    he is the one person, with 2 faces; named, subject search finds him. A person id that a URL would
    rewrite is refused before anything is sent. A face split out is a person of its own; both people
    deleted, their faces and subject are gone."""
    indexed = run("photos", "index", "gathering", str(folder))
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    clustered = run("people", "cluster", "gathering", "--wait")
    assert clustered.returncode == 0, clustered.stderr
    (job,) = lines(clustered.stdout)
    assert (job["state"], job["people"], job["assigned"]) == ("done", 1, 2), job
    assert len(job["job_id"]) == 32
    assert "clustering: done 100%" in clustered.stderr.splitlines()
    listed = run("people", "list", "gathering")
    (person,) = lines(listed.stdout)
    assert person["faces"] == 2 and person["representative"]["photo_id"] in ("players.jpg", "yaoming.jpg")
    named = run("people", "name", "gathering", person["person_id"], "yao-ming")
    assert named.returncode == 0, named.stderr
    (answer,) = lines(named.stdout)
    assert (answer["external_id"], answer["labelled_faces"]) == ("yao-ming", 2)
    found = run("search", "gathering", str(SELFIE))
    (result,) = lines(found.stdout)
    decision = result["results"][0]["decision"]
    assert (decision["match"], decision["external_id"]) == (True, "yao-ming"), found.stdout
    refused = run("people", "name", "gathering", "..", "someone")
    assert refused.returncode == 3 and "A person id is 32 lowercase hex characters" in refused.stderr

    # Split his selfie's face out, then forget both people: Yao Ming's faces go, his subject with them.
    split = run("people", "split", "gathering", person["person_id"], person["representative"]["face_id"])
    assert split.returncode == 0, split.stderr
    (apart,) = lines(split.stdout)
    assert apart["faces"] == 1 and apart["representative"]["face_id"] == person["representative"]["face_id"]
    for forgotten in (apart["person_id"], person["person_id"]):
        deleted = run("people", "delete", "gathering", forgotten)
        assert deleted.returncode == 0, deleted.stderr
        assert lines(deleted.stdout) == [{"person_id": forgotten, "deleted_faces": 1}]
    assert run("people", "list", "gathering").stdout == ""
    gone = run("people", "delete", "gathering", person["person_id"])
    assert gone.returncode == 3 and "has no person" in gone.stderr, gone.stderr
    found = run("search", "gathering", str(SELFIE))
    assert lines(found.stdout)[0]["results"][0]["matches"] == [], found.stdout


@pytest.fixture
def gathering(tmp_path: Path) -> Path:
    folder = tmp_path / "gathering"
    folder.mkdir()
    for photo in (TEAM_PHOTO, GROUP_PHOTO, TRIO_PHOTO, SELFIE):
        shutil.copy(photo, folder / photo.name)
    return folder


@pytest.mark.real_model
def test_people_over_http(service: tuple[str, Path], gathering: Path) -> None:
    url, _ = service
    key = {"FACE_SERVICE_API_KEY": API_KEY}
    assert cli("collections", "create", "gathering", "--url", url, **key).returncode == 0

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, "--url", url, **key)

    check_people_runs(gathering, run)
    assert cli("collections", "delete", "gathering", "--url", url, **key).returncode == 0


@pytest.mark.real_model
def test_people_here_without_a_service(gathering: Path, tmp_path: Path) -> None:
    store = {"DATA_DIR": str(tmp_path / "data"), "API_KEY": API_KEY}
    assert cli("collections", "create", "gathering", **store).returncode == 0

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, **store)

    check_people_runs(gathering, run)
    # The command's re-cluster is recorded in the store, as the service's: its status route shows it.
    from adapters.stores.sqlite import SqliteGallery
    from domain.gallery import GalleryLimits

    gallery = SqliteGallery(tmp_path / "data" / "gallery.sqlite3", GalleryLimits(10, 100, 100, 1000))
    try:
        recorded = gallery.cluster_job("gathering")
    finally:
        gallery.close()
    assert recorded is not None and (recorded.state, recorded.stage, recorded.progress) == ("done", "done", 1.0)
    assert recorded.outcome is not None and (recorded.outcome.people, recorded.outcome.assigned) == (1, 2)
