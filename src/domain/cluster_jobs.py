"""A collection's full re-cluster as a job kept in the store (issue 22; docs/people.md, "Re-cluster
jobs"): so that every replica on one database sees the same job, and one runs per collection.

A job is claimed (recorded queued) by one replica at a time per collection; the replica holding it
writes its progress and, every `HEARTBEAT`, a heartbeat. A queued or running job whose heartbeat is
older than `STALE_AFTER` has lost its replica (killed, restarted, cut off from the database): it
reads as failed, `INTERRUPTED`, and a new request may claim the collection again.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

HEARTBEAT = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=15)  # three heartbeats missed
INTERRUPTED = "interrupted: the process running it stopped before it finished"
ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class ClusterOutcome:
    faces: int  # faces the pass read
    grouped: int  # faces of at least the rules' quality, the ones it grouped
    people: int  # people after it
    assigned: int  # faces in a person after it


@dataclass(frozen=True, slots=True)
class ClusterJob:
    job_id: str  # 32 hex characters
    collection: str
    state: str  # queued, running, done, failed
    stage: str  # queued, reading, neighbours, grouping, storing, done, failed
    progress: float  # 0..1
    started_at: datetime
    heartbeat_at: datetime  # the last sign of life of the process that holds it
    finished_at: datetime | None = None
    outcome: ClusterOutcome | None = None
    error: str | None = None

    @classmethod
    def queued(cls, collection: str, now: datetime) -> ClusterJob:
        return cls(uuid.uuid4().hex, collection, "queued", "queued", 0.0, now, now)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def stale(self, now: datetime) -> bool:
        """Active, and its process has shown no sign of life for STALE_AFTER."""
        return self.active and self.heartbeat_at < now - STALE_AFTER

    def seen_at(self, now: datetime) -> ClusterJob:
        """The job as it stands at `now`: a stale one is failed, interrupted, finished when it was last
        known alive (its row may still say running: nobody is left to write otherwise)."""
        if not self.stale(now):
            return self
        return dataclasses.replace(
            self, state="failed", stage="failed", finished_at=self.heartbeat_at, error=INTERRUPTED
        )
