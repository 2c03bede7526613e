"""The TypeScript client (clients/typescript): its types match the server's OpenAPI document, and its
Node test suite passes against live servers, one on the fake backend and one on the real models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.__main__ import API_KEY, start_service
from face_service.app.bootstrap import openapi_document
from tests.conftest import GROUP_PHOTO, SELFIE, TEAM_PHOTO

pytestmark = pytest.mark.real_model
CLIENT = Path(__file__).resolve().parents[1] / "clients" / "typescript"
NPM = shutil.which("npm") or "npm"


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
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The fake backend's gallery is in memory; the real models' is SQLite, in a folder of its own."""
    fake, fake_url, _ = start_service({"API_KEY": API_KEY, "FACE_BACKEND": "fake"})
    real, real_url, _ = start_service({"API_KEY": API_KEY, "DATA_DIR": str(tmp_path_factory.mktemp("gallery"))})
    try:
        yield fake_url, real_url
    finally:
        for process in (fake, real):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_node_suite_passes_against_live_servers(installed: None, servers: tuple[str, str], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in (SELFIE, GROUP_PHOTO, TEAM_PHOTO):
        shutil.copy(path, photos / path.name)
    ok, blank = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))  # a flat colour: no face
    assert ok
    (photos / "blank.png").write_bytes(blank.tobytes())
    fake_url, real_url = servers
    env = {
        "FACE_SERVICE_URL": fake_url,
        "FACE_SERVICE_REAL_URL": real_url,
        "FACE_SERVICE_KEY": API_KEY,
        "FACE_SERVICE_PHOTOS": str(photos),
    }
    result = npm("test", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "# fail 0" in output and "# skipped 0" in output
    assert "# pass 20" in output
