"""Re-cluster jobs (domain/use_cases/cluster_jobs.py) on the memory store, two "replicas" (two
ClusterJobs on one store) and a clock the test moves: a job runs to done with its outcome, a second
claim while it is queued or running gets it, heartbeats keep a held job fresh, a job whose replica
went quiet reads as interrupted and may be claimed again, and the replaced job then stops before it
writes any people."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from adapters.people.neighbours import FaissNeighbours
from domain.cluster_jobs import HEARTBEAT, INTERRUPTED, STALE_AFTER, ClusterJob
from domain.errors import ClusteringNotStarted, StoreUnavailable
from domain.people import Neighbours
from domain.use_cases.cluster_jobs import ClusterJobs, Heartbeat
from domain.use_cases.people import People
from tests.unit.test_people_use_cases import RULES, T, World


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> datetime:
        return self.now


def replica(world: World, clock: Clock, neighbours: object | None = None) -> ClusterJobs:
    people = People(world.gallery, world.gallery, neighbours or FaissNeighbours(), RULES)  # type: ignore[arg-type]
    return ClusterJobs(people, world.gallery, clock)


def photos(world: World) -> None:
    for i in range(6):
        world.photo(f"p{i}", [i % 2])


def test_a_job_runs_to_done_and_a_second_claim_meanwhile_gets_it() -> None:
    world, clock = World(identities=2), Clock()
    photos(world)
    one, two = replica(world, clock), replica(world, clock)
    with pytest.raises(ClusteringNotStarted):
        two.status("c")
    job, claimed = one.claim("c")
    assert claimed and (job.state, job.stage, len(job.job_id)) == ("queued", "queued", 32)
    again, claimed_again = two.claim("c")
    assert again == job and not claimed_again  # seen by the other replica, not started twice
    assert two.status("c") == job

    clock.now += timedelta(seconds=1)
    finished = one.run(job)
    assert (finished.state, finished.stage, finished.progress, finished.error) == ("done", "done", 1.0, None)
    assert finished.outcome is not None and (finished.outcome.faces, finished.outcome.people) == (6, 2)
    assert finished.finished_at == clock.now and finished.heartbeat_at == clock.now
    assert two.status("c") == finished
    assert len(world.gallery.memberships("c")) == 6
    newer, claimed = two.claim("c")  # done: a new request starts a new job
    assert claimed and newer.job_id != job.job_id


def test_heartbeats_keep_a_held_job_fresh_and_a_silent_one_reads_as_interrupted() -> None:
    world, clock = World(identities=2), Clock()
    photos(world)
    one, two = replica(world, clock), replica(world, clock)
    job, _ = one.claim("c")  # queued: waits behind other work, beaten all the same
    for _ in range(4):
        clock.now += HEARTBEAT
        one.beat()
    assert two.status("c").state == "queued" and two.status("c").heartbeat_at == clock.now
    assert two.claim("c")[1] is False

    clock.now += STALE_AFTER + timedelta(seconds=1)  # one's process stopped beating
    assert one.status("c").state == "queued"  # one knows it holds the job: alive, whatever its heartbeat
    assert one.claim("c") == (one.status("c"), False)
    seen = two.status("c")
    assert (seen.job_id, seen.state, seen.stage, seen.error) == (job.job_id, "failed", "failed", INTERRUPTED)
    assert seen.finished_at == job.heartbeat_at + 4 * HEARTBEAT  # when it was last known alive
    newer, claimed = two.claim("c")
    assert claimed and newer.job_id != job.job_id
    assert one.status("c") == newer
    assert one.claim("c") == (newer, False)  # one learns it lost its job; two's fresh one stands

    # One comes back and runs the job it held: replaced, it stops before writing any people, and
    # leaves the newer job as it was.
    stopped = one.run(job)
    assert stopped.job_id == job.job_id
    assert world.gallery.memberships("c") == {}
    assert two.status("c") == newer
    assert one.held == 0
    one.beat()  # nothing held: nothing written
    assert two.status("c") == newer


class Failing:
    def neighbours(self, vectors: npt.NDArray[np.float32], k: int) -> Neighbours:
        raise RuntimeError("boom")


def test_a_pass_that_fails_is_failed_with_why() -> None:
    world, clock = World(identities=2), Clock()
    photos(world)
    jobs = replica(world, clock, Failing())
    job, _ = jobs.claim("c")
    failed = jobs.run(job)
    assert (failed.state, failed.stage, failed.error) == ("failed", "failed", "internal error")
    assert jobs.status("c") == failed and jobs.held == 0


def test_the_heartbeat_thread_beats_until_stopped() -> None:
    beaten = threading.Event()
    with Heartbeat(beaten.set, every=0.001):
        assert beaten.wait(10)  # a guard against a hang, not a timing


def test_a_pass_whose_end_the_store_did_not_take_is_let_go_and_reads_as_interrupted() -> None:
    world, clock = World(identities=2), Clock()
    photos(world)
    gallery = world.gallery
    saved = gallery.save_cluster_job

    def save(job: ClusterJob) -> bool:
        if job.state == "done":
            raise StoreUnavailable("the store went away")
        return saved(job)

    gallery.save_cluster_job = save  # type: ignore[method-assign]
    jobs = replica(world, clock)
    job, _ = jobs.claim("c")
    ended = jobs.run(job)
    assert ended.job_id == job.job_id and jobs.held == 0  # no heartbeat keeps it alive any more
    assert jobs.status("c").state == "running"
    clock.now += STALE_AFTER + timedelta(seconds=1)
    assert (jobs.status("c").state, jobs.status("c").error) == ("failed", INTERRUPTED)
