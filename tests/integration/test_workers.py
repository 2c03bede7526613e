"""Worker processes (INFERENCE_ISOLATION=process, the default): a worker that crashes or overruns
its time is replaced, only its own job fails, and the service keeps serving. Each worker is given the
next job while one runs (JOBS_PER_WORKER): answers reach their own callers, the least busy worker
is chosen, and a job waiting behind one that fails is run by the replacement."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import pytest

from adapters.inference.jobs import Extract, Job, JobResult
from adapters.inference.pool import ProcessRunner
from adapters.inference.worker import WorkerFailed
from tests.support.workers import initialize


def job(body: bytes, request_id: str = "") -> Job:
    return Extract("application/json", body, request_id=request_id)


def answer(result: JobResult) -> dict[str, Any]:
    assert result.status == 200
    decoded: dict[str, Any] = json.loads(result.body)
    return decoded


def test_each_answer_reaches_its_own_caller_with_its_whole_body() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=1, timeout=30)
        await runner.start()
        try:
            bodies = [bytes([n]) * (n * 1_000_000 + 7) for n in range(1, 7)]  # 1 to 6 MB: past the pipe
            results = await asyncio.gather(*(runner.run(job(body, f"r{n}")) for n, body in enumerate(bodies)))
            for n, (body, result) in enumerate(zip(bodies, results, strict=True)):
                got = answer(result)
                assert (got["sha256"], got["request_id"]) == (hashlib.sha256(body).hexdigest(), f"r{n}")
        finally:
            runner.close()

    asyncio.run(scenario())


def test_an_idle_worker_is_chosen_before_a_busy_one() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=2, timeout=30)
        await runner.start()
        try:
            for _ in range(3):
                first, second = await asyncio.gather(runner.run(job(b"sleep0.3")), runner.run(job(b"sleep0.3")))
                assert answer(first)["pid"] != answer(second)["pid"]
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_job_waiting_behind_a_crash_is_run_by_the_replacement() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=1, timeout=30)
        await runner.start()
        try:
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
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_job_waiting_behind_a_hung_one_gets_its_own_time() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=1, timeout=1.0)
        await runner.start()
        try:
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
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_crashed_worker_is_replaced_and_only_its_job_fails() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=2, timeout=30)
        await runner.start()
        try:
            assert runner.state().alive == 2
            with pytest.raises(WorkerFailed) as crashed:
                await runner.run(job(b"crash"))
            assert crashed.value.code == "worker_crashed"
            state = runner.state()
            assert (state.alive, state.restarts) == (2, 1)
            for _ in range(4):  # served again
                assert (await runner.run(job(b"ok"))).status == 200
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_hung_worker_is_killed_at_the_timeout_while_the_other_serves() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(initialize, (), workers=2, timeout=1.0)
        await runner.start()
        try:
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
        finally:
            runner.close()

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
