"""Worker processes (INFERENCE_ISOLATION=process, the default): a worker that crashes or overruns
its time is replaced, only its own job fails, and the service keeps serving."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.inference.jobs import Extract, Job
from adapters.inference.pool import ProcessRunner
from adapters.inference.worker import WorkerFailed
from tests.support.workers import initialize


def job(body: bytes) -> Job:
    return Extract("application/json", body)


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
