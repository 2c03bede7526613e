"""Full re-clusters as jobs kept in the store (domain/cluster_jobs.py has the rules): claimed there, one
per collection across replicas, their progress and heartbeat written there as they run, read back by
whichever replica is asked. The HTTP adapter runs them in the background (adapters/http/clustering.py);
the local CLI runs one to the end in its own process.

The jobs this process holds (claimed, not finished) get a heartbeat every HEARTBEAT while the
`Heartbeat` thread runs, the queued ones too: one waiting behind another collection's re-cluster is
not taken for lost. A job another claim replaced (this process was taken for lost: a pause longer
than STALE_AFTER) stops at its next stage, before it writes any people.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType

from domain.cluster_jobs import HEARTBEAT, STALE_AFTER, ClusterJob
from domain.errors import ClusteringNotStarted, FaceServiceError
from domain.ports import ClusterJobStore
from domain.use_cases.gallery_rules import checked_name
from domain.use_cases.people import People, Progress

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class JobReplaced(Exception):
    """The job is no longer its collection's: a newer claim took its place."""


class ClusterJobs:
    def __init__(self, people: People, store: ClusterJobStore, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._people = people
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()  # the held jobs, and each write of one (the last state wins)
        self._held: dict[str, ClusterJob] = {}  # job id -> its state as this process last wrote it
        self._replaced: set[str] = set()

    def claim(self, name: str) -> tuple[ClusterJob, bool]:
        """A new job for the collection, queued, unless one is queued or running (on any replica):
        the collection's job, and whether this call claimed it (then this process must `run` it)."""
        now = self._clock()
        wanted = ClusterJob.queued(checked_name(name), now)
        with self._lock:
            mine = self._mine(name)
            if mine is not None:  # alive, whatever its heartbeat (one held up behind a long write)
                stored = self._store.cluster_job(name)
                if stored is not None and stored.job_id == mine.job_id:
                    return stored, False
                self._replaced.add(mine.job_id)  # another process took it over: it stops at its next stage
            job = self._store.claim_cluster_job(wanted, now - STALE_AFTER)
            claimed = job.job_id == wanted.job_id
            if claimed:
                self._held[job.job_id] = job
        return job.seen_at(now), claimed

    def status(self, name: str) -> ClusterJob:
        """The collection's last job as it stands now (a stale one: failed, interrupted)."""
        job = self._store.cluster_job(checked_name(name))
        if job is None:
            raise ClusteringNotStarted(f"no re-cluster of collection {name!r} was started")
        with self._lock:
            mine = self._mine(name)
            if mine is not None and mine.job_id == job.job_id:
                return job  # this process runs it: not lost, even if a heartbeat is late
        return job.seen_at(self._clock())

    def run(self, job: ClusterJob, progress: Progress | None = None) -> ClusterJob:
        """Run a job `claim` gave this process, to its end: done, or failed with why (`progress` sees
        each stage too). Its last state."""

        def advance(stage: str, done: float) -> None:
            self._write(job, {"stage": stage, "progress": done}, check=True)
            if progress is not None:
                progress(stage, done)

        end: dict[str, object]
        try:
            self._write(job, {"state": "running", "stage": "reading"}, check=True)
            outcome = self._people.recluster(job.collection, advance)
            end = {"state": "done", "stage": "done", "progress": 1.0, "outcome": outcome}
        except JobReplaced:
            logger.warning("the re-cluster %s of collection %r was replaced by a newer one", job.job_id, job.collection)
            return self._finish(job)
        except FaceServiceError as error:
            end = {"state": "failed", "stage": "failed", "error": error.message}
        except Exception:
            logger.exception("the re-cluster of collection %r failed", job.collection)
            end = {"state": "failed", "stage": "failed", "error": "internal error"}
        try:
            self._write(job, {"finished_at": self._clock(), **end})
        except FaceServiceError as error:  # unrecorded, its heartbeat stops: it will read as interrupted
            logger.error(
                "the re-cluster of collection %r ended, but the store did not take it: %s",
                job.collection,
                error.message,
            )
        return self._finish(job)

    def beat(self) -> None:
        """A heartbeat for every job this process holds."""
        with self._lock:
            held = list(self._held.values())
        for job in held:
            try:
                self._write(job)
            except FaceServiceError as error:  # the store is away: the job may read as interrupted
                logger.warning("no heartbeat for the re-cluster of %r: %s", job.collection, error.message)

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.beat)

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _mine(self, name: str) -> ClusterJob | None:
        """The collection's job this process holds and still owns (call with the lock held)."""
        return next(
            (job for job in self._held.values() if job.collection == name and job.job_id not in self._replaced), None
        )

    def _write(self, job: ClusterJob, changes: Mapping[str, object] | None = None, *, check: bool = False) -> None:
        """The job's held state with `changes` and a heartbeat of now, to the store. `check`: raise
        JobReplaced when a newer claim took its place (from the pass's progress: it stops there)."""
        with self._lock:
            current = self._held.get(job.job_id)
            if current is None:  # finished meanwhile: a late heartbeat writes nothing
                return
            current = dataclasses.replace(current, heartbeat_at=self._clock(), **(changes or {}))  # type: ignore[arg-type]
            self._held[job.job_id] = current
            if job.job_id in self._replaced or not self._store.save_cluster_job(current):
                self._replaced.add(job.job_id)
                if check:
                    raise JobReplaced(job.job_id)

    def _finish(self, job: ClusterJob) -> ClusterJob:
        with self._lock:
            self._replaced.discard(job.job_id)
            return self._held.pop(job.job_id, job)


class Heartbeat:
    """A thread that calls `beat` every HEARTBEAT while the `with` block (or until `stop`)."""

    def __init__(self, beat: Callable[[], None], every: float = HEARTBEAT.total_seconds()) -> None:
        self._beat = beat
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cluster-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopped.wait(self._every):
            self._beat()
