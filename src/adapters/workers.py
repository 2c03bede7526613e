"""Where inference runs: worker processes (the default) or threads, behind one small interface.

Processes (INFERENCE_ISOLATION=process): each worker is a process with its own model sessions,
fed one job at a time over a pipe. The event loop's process then runs no Python that grows with a
request: decoding, models and scoring hold another process's GIL, never the loop's. A worker that
dies or overruns JOB_TIMEOUT_SECONDS is killed and replaced; only its own job fails (503).

Threads (INFERENCE_ISOLATION=thread): the jobs run on a thread pool in this process: the fast test
suite's mode, and a fallback where processes are not wanted. A job past its timeout is answered
503 but runs on (a thread cannot be killed).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, runtime_checkable

from adapters.executor import InferenceExecutor, trim_memory
from adapters.http.jobs import Job, JobResult
from domain.use_cases.service_info import ServiceInfo

logger = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 300.0  # model loading on a cold, busy machine


class WorkerFailed(Exception):
    """A job's worker crashed, or overran its time, and was replaced. Safe to retry."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class WorkersState:
    isolation: str
    workers: int
    alive: int
    restarts: int


@runtime_checkable
class InferenceRunner(Protocol):
    async def start(self) -> None:
        """Load and warm up every worker; raises when one cannot start (a bad model, say)."""
        ...

    async def run(self, job: Job) -> JobResult: ...

    @property
    def info(self) -> ServiceInfo:
        """What the workers serve (known once started)."""
        ...

    def close(self) -> None: ...

    def state(self) -> WorkersState: ...


class ThreadRunner:
    def __init__(
        self,
        perform: Callable[[Job], JobResult],
        warm_up: Callable[[], None],
        info: ServiceInfo,
        workers: int,
        timeout: float,
    ) -> None:
        self._perform = perform
        self._warm_up = warm_up
        self.info = info
        self._workers = workers
        self._timeout = timeout
        self._executor: InferenceExecutor | None = None

    def _pool(self) -> InferenceExecutor:
        if self._executor is None:  # started again after close: test clients open one app several times
            self._executor = InferenceExecutor(self._workers)
        return self._executor

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool(), self._warm_up)

    async def run(self, job: Job) -> JobResult:
        future = asyncio.get_running_loop().run_in_executor(self._pool(), self._perform, job)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            raise WorkerFailed("The inference took longer than JOB_TIMEOUT_SECONDS", "inference_timeout") from None

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def state(self) -> WorkersState:
        return WorkersState("thread", self._workers, self._workers, 0)


Initializer = Callable[..., tuple[Callable[[Job], JobResult], ServiceInfo]]


def worker_main(connection: Connection, initializer: Initializer, args: tuple[Any, ...]) -> None:
    """A worker process: build the service (`initializer` returns its job function and what it
    serves), say ready, then run jobs until the pipe closes."""
    try:
        perform, info = initializer(*args)
    except BaseException as error:
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        return
    connection.send(("ready", info))
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        result = perform(job)
        connection.send(result)
        trim_memory()


class WorkerProcess:
    """One worker process and the pipe to it. Driven by one thread of the parent at a time."""

    def __init__(self, context: Any, initializer: Initializer, args: tuple[Any, ...], number: int) -> None:
        self._context = context
        self._initializer = initializer
        self._args = args
        self.number = number
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self.info: ServiceInfo | None = None

    def start(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child, self._initializer, self._args),
            name=f"inference-{self.number}",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_SECONDS):
            process.kill()
            raise RuntimeError(f"inference worker {self.number} did not start in {START_TIMEOUT_SECONDS:.0f} s")
        try:
            status, detail = parent.recv()
        except EOFError:
            status, detail = "failed", f"exit code {process.join(5) or process.exitcode}"
        if status != "ready":
            process.join(5)
            raise RuntimeError(f"inference worker {self.number} failed to start: {detail}")
        self._process, self._connection, self.info = process, parent, detail

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def call(self, job: Job, timeout: float) -> JobResult:
        """Send a job and wait for its result. Raises WorkerFailed after replacing a worker that
        died or overran `timeout`."""
        if self._connection is None:  # its replacement failed to start earlier: try once more
            try:
                self.start()
            except RuntimeError as error:
                raise WorkerFailed(f"No inference worker could be started: {error}", "worker_unavailable") from None
        assert self._connection is not None
        try:
            self._connection.send(job)
            if not self._connection.poll(timeout):
                self._replace("overran JOB_TIMEOUT_SECONDS")
                raise WorkerFailed("The inference took longer than JOB_TIMEOUT_SECONDS", "inference_timeout")
            result: JobResult = self._connection.recv()
            return result
        except (EOFError, OSError, BrokenPipeError):
            self._replace("died")
            raise WorkerFailed("The inference worker stopped during this request", "worker_crashed") from None

    def _replace(self, reason: str) -> None:
        logger.error("inference worker %d %s; starting a new one", self.number, reason)
        self.stop()
        try:
            self.start()
        except RuntimeError as error:  # tried again at its next job
            logger.error("inference worker %d could not be restarted: %s", self.number, error)

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = self._connection = None


class ProcessRunner:
    def __init__(self, initializer: Initializer, args: tuple[Any, ...], workers: int, timeout: float) -> None:
        # forkserver: workers are forked from a clean, single-threaded server process (never from this
        # one, which runs threads and an event loop), with the model stack already imported there.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["app.worker"])
        self._workers = [WorkerProcess(self._context, initializer, args, number) for number in range(workers)]
        self._timeout = timeout
        self._idle: asyncio.Queue[WorkerProcess] | None = None
        self._drivers: ThreadPoolExecutor | None = None
        self._restarts = 0
        self._lock = threading.Lock()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._drivers = ThreadPoolExecutor(max_workers=len(self._workers), thread_name_prefix="worker-driver")
        await asyncio.gather(*(loop.run_in_executor(self._drivers, worker.start) for worker in self._workers))
        self._idle = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    @property
    def info(self) -> ServiceInfo:
        info = self._workers[0].info
        if info is None:
            raise RuntimeError("the inference workers have not started")
        return info

    async def run(self, job: Job) -> JobResult:
        assert self._idle is not None and self._drivers is not None, "start() first"
        worker = await self._idle.get()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._drivers, worker.call, job, self._timeout)
        except WorkerFailed:
            with self._lock:
                self._restarts += 1
            raise
        finally:
            self._idle.put_nowait(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        if self._drivers is not None:
            self._drivers.shutdown(wait=True, cancel_futures=True)
            self._drivers = None

    def state(self) -> WorkersState:
        alive = sum(1 for worker in self._workers if worker.alive)
        return WorkersState("process", len(self._workers), alive, self._restarts)
