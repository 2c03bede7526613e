"""The TypeScript client (clients/typescript): its types match the server's OpenAPI document, and its
Node test suite passes against live servers, one on the fake backend and one on the real models."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from app.bootstrap import openapi_document
from app.keys import new_key
from bench.__main__ import API_KEY, start_service
from tests.support.paths import ROOT
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO

pytestmark = pytest.mark.real_model
CLIENT = ROOT / "clients" / "typescript"
NPM = shutil.which("npm") or "npm"
NODE = shutil.which("node") or "node"


def npm(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NPM, *args], cwd=CLIENT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def installed() -> None:
    """The client's locked dev dependencies (typescript, openapi-typescript), from package-lock.json."""
    if not (CLIENT / "node_modules" / ".bin" / "tsc").exists():
        result = npm("ci", "--no-audit", "--no-fund")
        assert result.returncode == 0, result.stdout + result.stderr


def test_client_version_is_the_service_version() -> None:
    """The client is versioned with the API it speaks: package.json, its lock and pyproject.toml agree."""
    version = tomllib.loads((CLIENT.parents[1] / "pyproject.toml").read_text())["project"]["version"]
    package = json.loads((CLIENT / "package.json").read_text())
    lock = json.loads((CLIENT / "package-lock.json").read_text())
    assert package["version"] == version, "set clients/typescript/package.json's version to the service's"
    assert lock["version"] == lock["packages"][""]["version"] == version, "run `npm install` in clients/typescript"


def test_checked_in_openapi_document_matches_the_server() -> None:
    checked_in = json.loads((CLIENT / "openapi.json").read_text())
    assert checked_in == json.loads(json.dumps(openapi_document())), (
        "the API changed: run `uv run face-service openapi > clients/typescript/openapi.json` "
        "and `npm run generate` in clients/typescript"
    )


@pytest.mark.node
def test_generated_types_match_the_document(installed: None, tmp_path: Path) -> None:
    output = tmp_path / "schema.ts"
    result = subprocess.run(
        [str(CLIENT / "node_modules" / ".bin" / "openapi-typescript"), "openapi.json", "-o", str(output)],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text() == (CLIENT / "src" / "schema.ts").read_text(), "run `npm run generate`"


@pytest.fixture(scope="module")
def built(installed: None) -> None:
    """`npm run build`: the client and its tests, compiled into dist/."""
    result = npm("run", "build")
    assert result.returncode == 0, result.stdout + result.stderr


SCOPED_COLLECTION = "scoped-acme"


@pytest.fixture(scope="module")
def scoped_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A key that may only search SCOPED_COLLECTION, and the keys file that holds its hash."""
    secret, entry = new_key("nextjs-search", [SCOPED_COLLECTION], ["search"])
    path = tmp_path_factory.mktemp("keys") / "keys.toml"
    path.write_text(entry + "\n")
    return secret, path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, scoped_key: tuple[str, Path]) -> Iterator[tuple[str, str]]:
    """The fake backend's gallery is in memory (its keys: API_KEY and the scoped key); the real
    models' is SQLite, in a folder of its own."""
    fake, fake_url, _ = start_service({"API_KEY": API_KEY, "FACE_BACKEND": "fake", "API_KEYS_FILE": str(scoped_key[1])})
    real, real_url, _ = start_service({"API_KEY": API_KEY, "DATA_DIR": str(tmp_path_factory.mktemp("gallery"))})
    try:
        yield fake_url, real_url
    finally:
        for process in (fake, real):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


@pytest.mark.node
def test_node_suite_passes_against_live_servers(
    built: None, servers: tuple[str, str], scoped_key: tuple[str, Path], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in (SELFIE, GROUP_PHOTO, TEAM_PHOTO, TRIO_PHOTO):
        shutil.copy(path, photos / path.name)
    ok, blank = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))  # a flat colour: no face
    assert ok
    (photos / "blank.png").write_bytes(blank.tobytes())
    dark = np.random.default_rng(0).integers(0, 4, size=(200, 200, 3), dtype=np.uint8)  # a low face (fake)
    (photos / "dark.png").write_bytes(cv2.imencode(".png", dark)[1].tobytes())
    blurred = cv2.GaussianBlur(cv2.imread(str(SELFIE)), (0, 0), 6.0)  # a low face (real models): LOW_SHARPNESS
    (photos / "blurred.png").write_bytes(cv2.imencode(".png", blurred)[1].tobytes())
    fake_url, real_url = servers
    env = {
        "FACE_SERVICE_URL": fake_url,
        "FACE_SERVICE_REAL_URL": real_url,
        "FACE_SERVICE_KEY": API_KEY,
        "FACE_SERVICE_PHOTOS": str(photos),
        "FACE_SERVICE_SCOPED_KEY": scoped_key[0],
        "FACE_SERVICE_SCOPED_COLLECTION": SCOPED_COLLECTION,
    }
    result = subprocess.run(
        [NODE, "--test", "dist/test/"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )  # what `npm test` runs after its build
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "# fail 0" in output and "# skipped 0" in output
    assert "# pass 28" in output


# ----- README: the collections example, with curl and with the client, on the real models


def readme_example(kind: str) -> str:
    readme = (ROOT / "README.md").read_text()
    blocks: list[str] = re.findall(rf"<!-- collections example: {kind} -->\n```\w*\n(.*?)```\n", readme, re.DOTALL)
    assert len(blocks) == 1, f"README.md: one block marked `<!-- collections example: {kind} -->`"
    return blocks[0]


def delete_players(url: str) -> None:
    httpx.delete(f"{url}/collections/players", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)


def found_in_team_photo(results: list[dict[str, Any]]) -> list[str]:
    return [result["decision"]["external_id"] for result in results if result["decision"]["match"]]


def test_readme_collections_example_with_curl(servers: tuple[str, str], tmp_path: Path) -> None:
    """Run in the folder of "Try it" (face.jpg), against the real models: Yao Ming enrolled, then found."""
    _, real_url = servers
    script = readme_example("curl")
    assert len(script.splitlines()) == 5
    shutil.copy(SELFIE, tmp_path / "face.jpg")
    script = script.replace(".venv/", f"{sys.prefix}/").replace("http://localhost:8000", real_url)
    script = script.replace("your-secure-api-key", API_KEY)
    delete_players(real_url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    decoder, answers, text = json.JSONDecoder(), [], result.stdout
    while text.strip():
        answer, end = decoder.raw_decode(text.strip())
        answers.append(answer)
        text = text.strip()[end:]
    created, enrolled, search = answers
    assert created["name"] == "players" and enrolled["external_id"] == "yao-ming"
    assert len(search["results"]) == 22
    assert found_in_team_photo(search["results"]) == ["yao-ming"]
    matched = [index for index, result in enumerate(search["results"]) if result["decision"]["match"]]
    assert f"`results[{matched[0]}]`" in (ROOT / "README.md").read_text(), "README.md names the match's index"
    delete_players(real_url)


@pytest.mark.node
def test_readme_collections_example_with_the_client(built: None, servers: tuple[str, str], tmp_path: Path) -> None:
    """Type-checked (strict, skipLibCheck off) and run as an ES module against the real models, with the
    client resolved as an installed package."""
    _, real_url = servers
    code = readme_example("typescript")
    assert len([line for line in code.splitlines() if line and not line.startswith("import ")]) == 5
    (tmp_path / "example.ts").write_text(code)
    (tmp_path / "package.json").write_text(json.dumps({"type": "module"}))
    options = {"target": "ES2022", "module": "NodeNext", "strict": True, "skipLibCheck": False, "types": ["node"]}
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "files": ["example.ts"]}))
    modules = tmp_path / "node_modules"
    (modules / "@face-service").mkdir(parents=True)
    (modules / "@face-service" / "client").symlink_to(CLIENT)
    (modules / "@types").symlink_to(CLIENT / "node_modules" / "@types")
    shutil.copy(SELFIE, tmp_path / "face.jpg")
    shutil.copy(TEAM_PHOTO, tmp_path / "team.jpg")

    compiled = subprocess.run(
        [str(CLIENT / "node_modules" / ".bin" / "tsc"), "-p", "."], cwd=tmp_path, capture_output=True, text=True
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    delete_players(real_url)
    env = {**os.environ, "FACE_SERVICE_URL": real_url, "FACE_SERVICE_API_KEY": API_KEY}
    ran = subprocess.run([NODE, "example.js"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("yao-ming ["), ran.stdout
    delete_players(real_url)
