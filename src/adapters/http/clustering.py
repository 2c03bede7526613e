"""A collection's full re-cluster into people (domain/use_cases/cluster_jobs.py), run in the background
on a thread of its own. The job lives in the store: claimed there (one per collection, across
replicas), its progress and heartbeat written there, its status read there by any replica."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from domain.cluster_jobs import ClusterJob
from domain.use_cases.cluster_jobs import Heartbeat
from domain.use_cases.collections import Collections


class ClusterJobs:
    """Re-clusters this replica claimed, one at a time on a thread of their own (a pass holds a
    collection's vectors and the cores for up to a minute at 100k faces: docs/people.md), so the
    gallery's threads keep serving; the heartbeat of the jobs it holds on another thread."""

    def __init__(self, collections: Callable[[], Collections]) -> None:
        self._collections = collections
        self._executor: ThreadPoolExecutor | None = None
        self._heartbeat: Heartbeat | None = None
        self._lock = threading.Lock()  # starts come from several gallery threads

    def start(self, name: str) -> tuple[ClusterJob, bool]:
        """Claim a re-cluster of the collection (blocks on the store: call it on a gallery thread): the
        collection's job, and whether this call started it (else one runs, here or on another replica)."""
        jobs = self._collections().cluster_jobs
        job, claimed = jobs.claim(name)
        if claimed:
            with self._lock:
                if self._executor is None:  # started again after close: test clients open one app several times
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="people")
                    self._heartbeat = jobs.heartbeat().start()
                self._executor.submit(jobs.run, job)
        return job, claimed

    def close(self) -> None:
        """No new job starts; a queued one never will (its heartbeat stops: it reads as interrupted)."""
        with self._lock:
            executor, self._executor = self._executor, None
            heartbeat, self._heartbeat = self._heartbeat, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if heartbeat is not None:
            heartbeat.stop()
