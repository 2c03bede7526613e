"""Re-cluster jobs in the ClusterJobStore port, on every store (memory, SQLite, PostgreSQL): one job
per collection claimed at a time (a fresh active one stands in the way, a stale or finished one does
not), progress saved only by the job that holds the collection, the job gone with its collection,
kept through a reopen; claims racing on two PostgreSQL replicas; the schema 4 -> 5 migration."""
# ruff: noqa: F811 (the contract suite's fixtures, imported, are this module's test arguments)

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import psycopg
import pytest

from domain.cluster_jobs import INTERRUPTED, STALE_AFTER, ClusterJob, ClusterOutcome
from domain.errors import CollectionNotFound
from domain.ports import ClusterJobStore, FaceGallery, PeopleStore
from tests.integration.test_gallery_contract import (  # noqa: F401 (fixtures)
    DIM,
    MODEL,
    Maker,
    clear_postgres,
    corrupt,
    gallery,
    make_gallery,
    open_sql_store,
    pg,
)
from tests.integration.test_people_store_contract import indexed

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Store(FaceGallery, PeopleStore, ClusterJobStore, Protocol):
    """Every store is all three ports."""


def queued(collection: str = "c", at: datetime = T0) -> ClusterJob:
    return ClusterJob.queued(collection, at)


def test_one_job_per_collection_until_it_ends_or_goes_stale(gallery: Store) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    assert gallery.cluster_job("c") is None
    first = queued()
    assert gallery.claim_cluster_job(first, T0 - STALE_AFTER) == first
    assert gallery.cluster_job("c") == first

    # Fresh and queued: a second claim gets the first job, and nothing changes.
    second = queued(at=T0 + timedelta(seconds=1))
    assert gallery.claim_cluster_job(second, T0 - STALE_AFTER) == first
    running = dataclasses.replace(first, state="running", stage="neighbours", progress=0.1, heartbeat_at=T0)
    assert gallery.save_cluster_job(running) is True
    assert gallery.cluster_job("c") == running
    assert gallery.claim_cluster_job(second, T0) == running  # a heartbeat at stale_before is fresh

    # Its heartbeat older than stale_before: the new claim replaces it, and the old job's writes stop.
    assert gallery.claim_cluster_job(second, T0 + timedelta(microseconds=1)) == second
    assert gallery.save_cluster_job(dataclasses.replace(running, progress=0.9)) is False
    assert gallery.cluster_job("c") == second

    # Done (or failed): a new claim goes through whatever its heartbeat.
    done = dataclasses.replace(
        second,
        state="done",
        stage="done",
        progress=1.0,
        heartbeat_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=2),
        outcome=ClusterOutcome(faces=10, grouped=8, people=3, assigned=7),
    )
    assert gallery.save_cluster_job(done) is True
    assert gallery.cluster_job("c") == done  # the outcome and every time read back as written
    third = queued(at=T0 + timedelta(seconds=3))
    assert gallery.claim_cluster_job(third, T0 - STALE_AFTER) == third


def test_jobs_belong_to_their_collection_and_go_with_it(gallery: Store) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    gallery.create_collection("d", MODEL, DIM, 0.3)
    job = gallery.claim_cluster_job(queued("c"), T0 - STALE_AFTER)
    other = queued("d")
    assert gallery.claim_cluster_job(other, T0 - STALE_AFTER) == other  # c's job is not in d's way
    assert gallery.cluster_job("d") == other
    failed = dataclasses.replace(other, state="failed", stage="failed", error="the collection was deleted meanwhile")
    assert gallery.save_cluster_job(failed) is True and gallery.cluster_job("d") == failed

    gallery.delete_collection("c")
    assert gallery.save_cluster_job(job) is False
    with pytest.raises(CollectionNotFound):
        gallery.cluster_job("c")
    with pytest.raises(CollectionNotFound):
        gallery.claim_cluster_job(queued("nobody"), T0)
    gallery.create_collection("c", MODEL, DIM, 0.3)  # the same name, a new collection: no job yet
    assert gallery.cluster_job("c") is None
    assert gallery.save_cluster_job(job) is False


def test_a_job_survives_a_reopen_and_one_left_running_reads_as_interrupted(make_gallery: Maker) -> None:
    store = make_gallery()
    indexed(store, 2, 1)  # type: ignore[arg-type]
    job = queued()
    running = dataclasses.replace(job, state="running", stage="grouping", progress=0.9)
    store.claim_cluster_job(job, T0 - STALE_AFTER)  # type: ignore[attr-defined]
    store.save_cluster_job(running)  # type: ignore[attr-defined]
    store.close()  # as a process that dies: nothing more is written to the job

    reopened = make_gallery()
    if store.kind == "memory":  # nothing survives the process, by design
        assert reopened.collections() == []
        return
    found = reopened.cluster_job("c")  # type: ignore[attr-defined]
    if store.kind == "sqlite":
        # One process per file: whatever was running when the file was last open has stopped.
        assert found == dataclasses.replace(
            running, state="failed", stage="failed", finished_at=running.heartbeat_at, error=INTERRUPTED
        )
    else:
        # Another replica may still run it: only its heartbeat says it stopped (domain/cluster_jobs.py).
        assert found == running
        assert found.seen_at(T0 + STALE_AFTER).state == "running"
        assert found.seen_at(T0 + STALE_AFTER + timedelta(seconds=1)).error == INTERRUPTED
    replacing = queued(at=T0 + timedelta(minutes=1))
    assert reopened.claim_cluster_job(replacing, T0 + timedelta(seconds=30)) == replacing  # type: ignore[attr-defined]


def test_postgres_replicas_racing_to_claim_one_collection_get_one_job(pg: Maker) -> None:
    replicas = [pg(), pg()]
    replicas[0].create_collection("c", MODEL, DIM, 0.3)
    wanted = [queued() for _ in range(8)]
    standing: list[ClusterJob] = []
    start = threading.Barrier(len(wanted))

    def claim(i: int) -> None:
        start.wait()
        standing.append(replicas[i % 2].claim_cluster_job(wanted[i], T0 - STALE_AFTER))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(wanted))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(standing) == len(wanted)
    assert len({job.job_id for job in standing}) == 1  # every claim answered by the one that won
    assert standing[0] in wanted
    assert replicas[1].cluster_job("c") == standing[0]  # type: ignore[attr-defined]


# Back to schema version 4, as a database of the release before re-cluster jobs.
TO_VERSION_4 = {
    "sqlite": [
        "DROP TABLE cluster_jobs",
        "ALTER TABLE people DROP COLUMN kept",
        "ALTER TABLE collections DROP COLUMN people_revision",
        "PRAGMA user_version = 4",
    ],
    "postgresql": [
        "DROP TABLE gallery_cluster_jobs",
        "ALTER TABLE gallery_people DROP COLUMN kept",
        "ALTER TABLE gallery_collections DROP COLUMN people_revision",
        "DELETE FROM gallery_schema WHERE version > 4",
    ],
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_version_4_database_is_migrated_and_keeps_its_people(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place, open_store = open_sql_store(kind, request, tmp_path)
    store = open_store()
    photos = indexed(store, 2, 1)
    person = store.move_faces("c", [photos[0][0].face_id, photos[1][0].face_id], None)
    store.close()
    corrupt(kind, place, TO_VERSION_4[kind])

    store = open_store()  # migrates: the jobs' table comes back, empty
    try:
        assert store.memberships("c") == {
            photos[0][0].face_id: person.person_id,
            photos[1][0].face_id: person.person_id,
        }
        assert store.cluster_job("c") is None
        job = queued()
        assert store.claim_cluster_job(job, T0 - STALE_AFTER) == job
        assert store.cluster_job("c") == job
    finally:
        store.close()
        if kind == "postgresql":
            clear_postgres(place)
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(place) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 6
    else:
        with psycopg.connect(place) as conn:
            assert conn.execute("SELECT max(version) FROM gallery_schema").fetchone() == (6,)


def test_sqlite_a_store_opened_once_more_leaves_finished_jobs_as_they_were(tmp_path: Path) -> None:
    from adapters.stores.sqlite import SqliteGallery
    from tests.integration.test_gallery_contract import LIMITS

    path = tmp_path / "faces.sqlite3"
    store = SqliteGallery(path, LIMITS)
    store.create_collection("c", MODEL, DIM, 0.3)
    job = store.claim_cluster_job(queued(), T0 - STALE_AFTER)
    done = dataclasses.replace(job, state="done", stage="done", progress=1.0, finished_at=T0 + timedelta(seconds=4))
    store.save_cluster_job(done)
    store.close()
    reopened = SqliteGallery(path, LIMITS)
    try:
        assert reopened.cluster_job("c") == done
    finally:
        reopened.close()
