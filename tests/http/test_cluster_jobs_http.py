"""Re-cluster jobs over HTTP across processes (docs/people.md, "Re-cluster jobs"): a job running when
its process is killed reads as failed, interrupted, once the service is back (SQLite: at once, the
file being one process's; PostgreSQL: once its heartbeat is stale), and a new one may start; two
replicas on one PostgreSQL database share the job: started on one, seen on the other, not started
twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from domain.cluster_jobs import INTERRUPTED, STALE_AFTER
from domain.use_cases.people import People, Progress
from tests.http.test_collections_http import store_env  # noqa: F401 (a fixture)
from tests.http.test_people_http import Client, index
from tests.support.paths import ROOT
from tests.support.services import AUTH, make_client, settings_for

CLUSTERING = "/collections/events/clustering"

# A process that claims and runs a re-cluster of "events" the way the service does (its heartbeat on),
# stuck in its neighbour search until it is killed.
CHILD = """
import sys, time
from pathlib import Path
from domain.gallery import GalleryLimits
from domain.use_cases.cluster_jobs import ClusterJobs
from domain.use_cases.collections import CollectionRules
from domain.use_cases.people import People

class Stuck:
    def neighbours(self, vectors, k):
        print("running", flush=True)
        time.sleep(600)

limits = GalleryLimits(10, 100, 100, 1000)
if sys.argv[1] == "postgresql":
    from adapters.stores.postgres.gallery import PostgresGallery
    store = PostgresGallery(sys.argv[2], limits)
else:
    from adapters.stores.sqlite import SqliteGallery
    store = SqliteGallery(Path(sys.argv[2]) / "gallery.sqlite3", limits)
jobs = ClusterJobs(People(store, store, Stuck(), CollectionRules(0.5, 3, 10, 50)), store)
job, claimed = jobs.claim("events")
assert claimed
print(job.job_id, flush=True)
with jobs.heartbeat():
    jobs.run(job)
"""


def finished(client: Client) -> dict[str, Any]:
    for _ in range(400):
        job = client.get(CLUSTERING, headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError("the re-cluster did not finish in 20 s")


def with_photos(env: dict[str, str]) -> None:
    with make_client(settings_for("fake", **env)) as client:
        client.post("/collections", headers=AUTH, json={"name": "events", "threshold": 0.5})
        for photo, image in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2)]:
            index(client, photo, image)


@pytest.mark.parametrize("store_env", ["sqlite", "postgresql"], indirect=True)
def test_a_job_running_when_its_process_is_killed_reads_as_interrupted(store_env: dict[str, str]) -> None:  # noqa: F811
    with_photos(store_env)
    kind = store_env["GALLERY_STORE"]
    place = store_env.get("DATABASE_URL") or store_env["DATA_DIR"]
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, place], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    job_id = child.stdout.readline().strip()
    assert child.stdout.readline().strip() == "running"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    if kind == "postgresql":
        # The service may be back before STALE_AFTER: until then the job may still be running on
        # another replica, and reads so. Its heartbeat aged by STALE_AFTER stands for the wait.
        with make_client(settings_for("fake", **store_env)) as client:
            seen = client.get(CLUSTERING, headers=AUTH).json()
            assert (seen["job_id"], seen["state"], seen["stage"]) == (job_id, "running", "neighbours")
            assert client.post(CLUSTERING, headers=AUTH).status_code == 200  # that one, not a new one
        with psycopg.connect(store_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(
                "UPDATE gallery_cluster_jobs SET heartbeat_at = heartbeat_at - %s", (STALE_AFTER + STALE_AFTER / 15,)
            )

    with make_client(settings_for("fake", **store_env)) as client:
        seen = client.get(CLUSTERING, headers=AUTH).json()
        assert (seen["job_id"], seen["state"], seen["stage"], seen["error"]) == (
            job_id,
            "failed",
            "failed",
            INTERRUPTED,
        )
        assert seen["finished_at"] is not None and seen["people"] is None
        started = client.post(CLUSTERING, headers=AUTH)
        assert started.status_code == 202 and started.json()["job_id"] != job_id
        done = finished(client)
        assert (done["job_id"], done["state"], done["people"]) == (started.json()["job_id"], "done", 2)


def held_reclusters(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Every re-cluster waits, once it is running, until the event is set; the list counts them."""
    release = threading.Event()
    started: list[str] = []
    original: Callable[..., Any] = People.recluster

    def held(self: People, name: str, progress: Progress = lambda stage, done: None) -> Any:
        started.append(name)
        progress("reading", 0.0)
        assert release.wait(30)
        return original(self, name, progress)

    monkeypatch.setattr(People, "recluster", held)
    return release, started


@pytest.mark.parametrize("store_env", ["postgresql"], indirect=True)
def test_two_replicas_on_one_database_share_the_job(
    store_env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_photos(store_env)
    release, started = held_reclusters(monkeypatch)
    with make_client(settings_for("fake", **store_env)) as one, make_client(settings_for("fake", **store_env)) as two:
        missing = two.get(CLUSTERING, headers=AUTH)
        assert (missing.status_code, missing.json()["code"]) == (404, "clustering_not_started")
        first = one.post(CLUSTERING, headers=AUTH)
        assert first.status_code == 202
        job_id = first.json()["job_id"]
        seen = two.get(CLUSTERING, headers=AUTH).json()
        assert seen["job_id"] == job_id and seen["state"] in ("queued", "running")
        again = two.post(CLUSTERING, headers=AUTH)
        assert again.status_code == 200 and again.json()["job_id"] == job_id  # the running one, not a second
        assert one.post(CLUSTERING, headers=AUTH).json()["job_id"] == job_id
        release.set()
        done = finished(two)
        assert (done["job_id"], done["state"], done["faces"], done["people"]) == (job_id, "done", 4, 2)
        assert one.get(CLUSTERING, headers=AUTH).json() == done
        assert started == ["events"]  # one pass, on one replica
        people = two.get("/collections/events/people", headers=AUTH).json()["people"]
        assert len(people) == 2
