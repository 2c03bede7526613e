"""A collection's full re-cluster into people (domain/use_cases/people.py), run in the background on
a thread of its own, with its progress for the status route (adapters/http/people.py)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.errors import ClusteringNotStarted, FaceServiceError
from domain.use_cases.collections import Collections
from domain.use_cases.people import ClusterOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterJob:
    collection: str
    state: str  # queued, running, done, failed
    stage: str
    progress: float
    started_at: datetime
    finished_at: datetime | None = None
    outcome: ClusterOutcome | None = None
    error: str | None = None


class ClusterJobs:
    """Full re-clusters, one at a time on a thread of their own (a pass holds a collection's vectors
    and the cores for up to a minute at 100k faces: docs/people.md), so the gallery's threads keep
    serving. One job per collection at a time: asking again while one is queued or running answers
    that one. The last job of each collection is kept for its status, in this process only."""

    def __init__(self, collections: Callable[[], Collections]) -> None:
        self._collections = collections
        self._lock = threading.Lock()
        self._jobs: dict[str, ClusterJob] = {}
        self._executor: ThreadPoolExecutor | None = None

    def start(self, name: str) -> tuple[ClusterJob, bool]:
        """The collection's job, and whether this call started it."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.state in ("queued", "running"):
                return job, False
            job = ClusterJob(name, "queued", "queued", 0.0, datetime.now(UTC))
            self._jobs[name] = job
            if self._executor is None:  # started again after close: test clients open one app several times
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="people")
            self._executor.submit(self._run, name)
            return job, True

    def status(self, name: str) -> ClusterJob:
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            raise ClusteringNotStarted(f"no re-cluster of collection {name!r} was started since this replica started")
        return job

    def _update(self, name: str, **changes: object) -> None:
        with self._lock:
            self._jobs[name] = dataclasses.replace(self._jobs[name], **changes)  # type: ignore[arg-type]

    def _run(self, name: str) -> None:
        self._update(name, state="running", stage="reading")
        try:
            outcome = self._collections().people.recluster(
                name, lambda stage, done: self._update(name, stage=stage, progress=done)
            )
        except FaceServiceError as error:
            self._update(name, state="failed", stage="failed", finished_at=datetime.now(UTC), error=error.message)
        except Exception:
            logger.exception("the re-cluster of collection %r failed", name)
            self._update(name, state="failed", stage="failed", finished_at=datetime.now(UTC), error="internal error")
        else:
            self._update(name, state="done", stage="done", progress=1.0, finished_at=datetime.now(UTC), outcome=outcome)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
