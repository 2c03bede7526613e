"""adapters/inference/executor.py: freed heap is kept while busy up to a limit, given back when idle."""

from __future__ import annotations

import threading
import time

import pytest

from adapters.inference import executor
from adapters.inference.executor import InferenceExecutor


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the heap was trimmed (after a job over the limit, or idle: trim_memory trims it too)."""
    calls: list[float] = []
    monkeypatch.setattr(executor, "trim_heap", lambda: calls.append(time.monotonic()))
    return calls


KEPT = executor.KEEP_FREE_HEAP_BYTES


@pytest.mark.parametrize(("free", "trimmed"), [(KEPT + 1, True), (KEPT, False), (None, True)])
def test_a_job_ends_with_a_trim_only_over_the_kept_free_heap_or_where_it_is_unknown(
    monkeypatch: pytest.MonkeyPatch, trims: list[float], free: int | None, trimmed: bool
) -> None:
    monkeypatch.setattr(executor, "free_heap_bytes", lambda: free)
    executor.trim_if_heap_over()
    assert bool(trims) is trimmed


def test_glibc_reports_its_free_heap_here() -> None:
    free = executor.free_heap_bytes()
    assert free is None or free >= 0


def test_the_pool_gives_memory_back_once_idle_and_not_while_jobs_keep_coming(
    monkeypatch: pytest.MonkeyPatch, trims: list[float]
) -> None:
    monkeypatch.setattr(executor, "free_heap_bytes", lambda: 0)  # never over the limit after a job
    monkeypatch.setattr(executor, "IDLE_TRIM_SECONDS", 0.2)
    pool = InferenceExecutor(workers=1)
    try:
        for _ in range(5):  # each job starts before the last one's idle timer fires
            pool.submit(time.sleep, 0.05).result()
        assert trims == []
        time.sleep(0.6)
        assert len(trims) == 1  # the last job's timer; the earlier ones saw a later job start
        release = threading.Event()
        running = pool.submit(release.wait, 5)
        time.sleep(0.4)
        assert len(trims) == 1  # busy: no idle trim
        release.set()
        running.result()
        time.sleep(0.6)
        assert len(trims) == 2
    finally:
        pool.shutdown()
