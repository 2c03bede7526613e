"""A re-cluster job (domain/cluster_jobs.py) as the SQL stores keep it: one row per collection, its
columns in CLUSTER_JOB_COLUMNS' order (job id, state, stage, progress, started, heartbeat, finished,
the outcome's four counts, error). Times are converted by the store (SQLite keeps microseconds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from domain.cluster_jobs import ClusterJob, ClusterOutcome


def values(job: ClusterJob, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    outcome = job.outcome
    counts = (None,) * 4 if outcome is None else (outcome.faces, outcome.grouped, outcome.people, outcome.assigned)
    finished = None if job.finished_at is None else time(job.finished_at)
    return (
        job.job_id,
        job.state,
        job.stage,
        job.progress,
        time(job.started_at),
        time(job.heartbeat_at),
        finished,
        *counts,
        job.error,
    )


def job(collection: str, row: Sequence[Any], moment: Callable[[Any], datetime]) -> ClusterJob:
    job_id, state, stage, progress, started, heartbeat, finished, faces, grouped, people, assigned, error = row
    outcome = None if faces is None else ClusterOutcome(int(faces), int(grouped), int(people), int(assigned))
    return ClusterJob(
        job_id,
        collection,
        state,
        stage,
        float(progress),
        moment(started),
        moment(heartbeat),
        None if finished is None else moment(finished),
        outcome,
        error,
    )
