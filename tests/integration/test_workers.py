"""Worker processes (INFERENCE_ISOLATION=process, the default): a worker that crashes or overruns
its time is replaced, only its own job fails, and the service keeps serving. Each worker is given the
next job while one runs (JOBS_PER_WORKER): answers reach their own callers, the least busy worker
is chosen, a job waiting behind one that fails is run by the replacement, a cancelled job holds its
worker until it ends, and closing the runner starts nothing again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.inference.jobs import Extract, Job, JobResult
from adapters.inference.pool import ProcessRunner
from adapters.inference.worker import Initializer, WorkerFailed
from tests.support.workers import initialize, initialize_unless


def job(body: bytes, request_id: str = "") -> Job:
    return Extract("application/json", body, request_id=request_id)


def answer(result: JobResult) -> dict[str, Any]:
    assert result.status == 200
    decoded: dict[str, Any] = json.loads(result.body)
    return decoded


def until_none_alive(runner: ProcessRunner) -> None:
    deadline = time.monotonic() + 10
    while runner.state().alive and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.asynccontextmanager
async def started(
    workers: int, job_seconds: float, initializer: Initializer = initialize, args: tuple[Any, ...] = ()
) -> AsyncIterator[ProcessRunner]:
    runner = ProcessRunner(initializer, args, workers=workers, timeout=job_seconds)
    await runner.start()
    try:
        yield runner
    finally:
        runner.close()


def test_each_answer_reaches_its_own_caller_with_its_whole_body() -> None:
    async def scenario() -> None:
        async with started(1, 30) as runner:
            bodies = [bytes([n]) * (n * 1_000_000 + 7) for n in range(1, 7)]  # 1 to 6 MB: past the pipe
            results = await asyncio.gather(*(runner.run(job(body, f"r{n}")) for n, body in enumerate(bodies)))
            for n, (body, result) in enumerate(zip(bodies, results, strict=True)):
                got = answer(result)
                assert (got["sha256"], got["request_id"]) == (hashlib.sha256(body).hexdigest(), f"r{n}")

    asyncio.run(scenario())


def test_an_idle_worker_is_chosen_before_a_busy_one() -> None:
    async def scenario() -> None:
        async with started(2, 30) as runner:
            for _ in range(3):
                first, second = await asyncio.gather(runner.run(job(b"sleep0.3")), runner.run(job(b"sleep0.3")))
                assert answer(first)["pid"] != answer(second)["pid"]

    asyncio.run(scenario())


def test_idle_workers_take_turns() -> None:
    async def scenario() -> None:
        async with started(2, 30) as runner:
            pids = [answer(await runner.run(job(b"ok")))["pid"] for _ in range(4)]  # one at a time
            assert pids[0] != pids[1] and pids[2:] == pids[:2]

    asyncio.run(scenario())


def test_a_job_waiting_behind_a_crash_is_run_by_the_replacement() -> None:
    async def scenario() -> None:
        async with started(1, 30) as runner:
            crashed_pid = answer(await runner.run(job(b"ok")))["pid"]
            crash = asyncio.ensure_future(runner.run(job(b"sleep0.2")))  # holds the worker...
            crash_next = asyncio.ensure_future(runner.run(job(b"crash")))  # ...while this one waits behind it
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(runner.run(job(b"after the crash")))
            assert answer(await crash)["pid"] == crashed_pid
            with pytest.raises(WorkerFailed) as failed:
                await crash_next
            assert failed.value.code == "worker_crashed"
            served = answer(await waiting)
            assert served["sha256"] == hashlib.sha256(b"after the crash").hexdigest()
            assert served["pid"] != crashed_pid
            assert runner.state().restarts == 1

    asyncio.run(scenario())


def test_a_job_waiting_behind_a_hung_one_gets_its_own_time() -> None:
    async def scenario() -> None:
        async with started(1, 1.0) as runner:
            began = time.monotonic()
            hung = asyncio.ensure_future(runner.run(job(b"hang")))
            await asyncio.sleep(0.1)
            # Sent behind the hung job: its second of JOB_TIMEOUT_SECONDS starts when it can run, on
            # the replacement, not while it waits. 5 MB: its sender is still writing when the hung
            # worker is killed.
            body = b"sleep0.5" + b" " * 5_000_000
            waiting = asyncio.ensure_future(runner.run(job(body)))
            with pytest.raises(WorkerFailed) as overran:
                await hung
            assert overran.value.code == "inference_timeout"
            assert answer(await waiting)["sha256"] == hashlib.sha256(body).hexdigest()
            assert time.monotonic() - began < 10
            assert runner.state().alive == 1 and runner.state().restarts == 1

    asyncio.run(scenario())


def test_a_crashed_worker_is_replaced_and_only_its_job_fails() -> None:
    async def scenario() -> None:
        async with started(2, 30) as runner:
            assert runner.state().alive == 2
            with pytest.raises(WorkerFailed) as crashed:
                await runner.run(job(b"crash"))
            assert crashed.value.code == "worker_crashed"
            state = runner.state()
            assert (state.alive, state.restarts) == (2, 1)
            for _ in range(4):  # served again
                assert (await runner.run(job(b"ok"))).status == 200

    asyncio.run(scenario())


def test_a_hung_worker_is_killed_at_the_timeout_while_the_other_serves() -> None:
    async def scenario() -> None:
        async with started(2, 1.0) as runner:
            began = time.monotonic()
            hung = asyncio.ensure_future(runner.run(job(b"hang")))
            await asyncio.sleep(0.1)
            served = await runner.run(job(b"ok"))  # the other worker is not held up
            assert served.status == 200 and time.monotonic() - began < 1.0
            with pytest.raises(WorkerFailed) as overran:
                await hung
            assert overran.value.code == "inference_timeout"
            assert time.monotonic() - began < 10
            assert runner.state().alive == 2 and runner.state().restarts == 1
            assert (await runner.run(job(b"ok"))).status == 200

    asyncio.run(scenario())


def test_a_worker_that_cannot_start_stops_start_up_with_the_reason() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (True,), workers=1, timeout=5)
        try:
            with pytest.raises(RuntimeError, match=r"missing\.onnx"):
                await runner.start()
        finally:
            runner.close()

    asyncio.run(scenario())


def test_closing_fails_the_jobs_in_flight_and_starts_no_worker_again() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=1, timeout=30)
        await runner.start()
        running = asyncio.ensure_future(runner.run(job(b"sleep1")))
        behind = asyncio.ensure_future(runner.run(job(b"sleep1")))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(runner.close)  # the lifespan's close, after uvicorn's grace period
        assert runner.state().alive == 0
        for outcome in await asyncio.gather(running, behind, return_exceptions=True):
            assert isinstance(outcome, WorkerFailed) and outcome.code == "worker_unavailable"

    asyncio.run(scenario())


def test_a_cancelled_job_holds_its_worker_until_it_ends() -> None:
    async def scenario() -> None:
        async with started(2, 30) as runner:
            busy = asyncio.ensure_future(runner.run(job(b"sleep1.5")))
            await asyncio.sleep(0.2)
            busy.cancel()  # its caller went away; the worker runs the job to its end
            with contextlib.suppress(asyncio.CancelledError):
                await busy
            began = time.monotonic()
            assert (await runner.run(job(b"ok"))).status == 200  # on the other, idle worker
            assert time.monotonic() - began < 0.5

    asyncio.run(scenario())


def test_a_worker_that_cannot_be_restarted_leaves_the_jobs_to_the_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        cannot_start = tmp_path / "no-more-starts"
        async with started(2, 30, initialize_unless, (str(cannot_start),)) as runner:
            cannot_start.touch()
            with pytest.raises(WorkerFailed):
                await runner.run(job(b"crash"))  # its replacement cannot start
            assert runner.state().alive == 1
            for _ in range(4):
                assert (await runner.run(job(b"ok"))).status == 200

    asyncio.run(scenario())


def test_a_job_that_cannot_be_sent_fails_alone() -> None:
    async def scenario() -> None:
        async with started(1, 2) as runner:
            with pytest.raises(TypeError):
                await runner.run(Extract("application/json", "not bytes"))  # type: ignore[arg-type]
            assert answer(await asyncio.wait_for(runner.run(job(b"ok")), 6))["sha256"]

    asyncio.run(scenario())


def test_a_worker_killed_while_idle_is_replaced_for_the_next_job() -> None:
    async def scenario() -> None:
        async with started(1, 30) as runner:
            killed = answer(await runner.run(job(b"ok")))["pid"]
            os.kill(killed, signal.SIGKILL)  # the OOM killer, say, between jobs
            await asyncio.to_thread(until_none_alive, runner)
            served = answer(await runner.run(job(b"ok")))  # never run by the dead worker: sent again
            assert served["pid"] != killed

    asyncio.run(scenario())
