"""Where inference runs: a pool of worker processes (the default) or threads, behind one small interface.

Processes (INFERENCE_ISOLATION=process): each worker is a process with its own model sessions,
fed over a pipe, with at most JOBS_PER_WORKER jobs given to it at once (worker.py says why two).
The event loop's process then runs no Python that grows with a request: decoding, models and
scoring hold another process's GIL, never the loop's. A worker that dies or overruns
JOB_TIMEOUT_SECONDS is killed and replaced; only its own job fails (503).

Threads (INFERENCE_ISOLATION=thread): the jobs run on a thread pool in this process: the fast test
suite's mode, and a fallback where processes are not wanted. A job past its timeout is answered
503 but runs on (a thread cannot be killed).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from adapters.inference.executor import InferenceExecutor
from adapters.inference.jobs import Job, JobResult
from adapters.inference.worker import Initializer, WorkerFailed, WorkerProcess
from domain.use_cases.service_info import ServiceInfo

JOBS_PER_WORKER = 2  # the one running and the next, already on its way


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


class ProcessRunner:
    def __init__(
        self,
        initializer: Initializer,
        args: tuple[Any, ...],
        workers: int,
        timeout: float,
        preload: tuple[str, ...] = (),
    ) -> None:
        # forkserver: workers are forked from a clean, single-threaded server process (never from this
        # one, which runs threads and an event loop), with `preload` (the model stack) imported there.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        self._workers = [WorkerProcess(self._context, initializer, args, number) for number in range(workers)]
        self._timeout = timeout
        self._places: asyncio.Semaphore | None = None
        self._given = 0  # jobs given out: which worker had one last
        self._drivers: ThreadPoolExecutor | None = None
        self._restarts = 0
        self._lock = threading.Lock()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        places = len(self._workers) * JOBS_PER_WORKER
        self._drivers = ThreadPoolExecutor(max_workers=places, thread_name_prefix="worker-driver")
        for worker in self._workers:
            worker.reopen()
        await asyncio.gather(*(loop.run_in_executor(self._drivers, worker.start) for worker in self._workers))
        self._places = asyncio.Semaphore(places)

    @property
    def info(self) -> ServiceInfo:
        info = self._workers[0].info
        if info is None:
            raise RuntimeError("the inference workers have not started")
        return info

    async def run(self, job: Job) -> JobResult:
        assert self._places is not None and self._drivers is not None, "start() first"
        places = self._places
        await places.acquire()
        # The least busy worker with a process (one whose replacement could not start only when no
        # other has): an idle one when there is one, and of those the one given a job longest ago
        # (taking turns, as a queue of idle workers did: light traffic keeps them all warm).
        # in_flight is only touched here and in `settle`, on the event loop, and the semaphore
        # leaves a place on the one chosen.
        worker = min(self._workers, key=lambda candidate: (not candidate.ready, candidate.in_flight, candidate.given))
        self._given += 1
        worker.given = self._given
        worker.in_flight += 1
        running = asyncio.get_running_loop().run_in_executor(self._drivers, worker.call, job, self._timeout)

        def settle(done: asyncio.Future[JobResult]) -> None:
            # When the driver thread is done, not when the caller stops waiting (a request cancelled
            # by a client gone): until then the job holds its worker and its place.
            worker.in_flight -= 1
            places.release()
            if not done.cancelled() and isinstance(done.exception(), WorkerFailed):
                with self._lock:
                    self._restarts += 1

        running.add_done_callback(settle)
        return await asyncio.shield(running)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        if self._drivers is not None:
            self._drivers.shutdown(wait=True, cancel_futures=True)
            self._drivers = None

    def state(self) -> WorkersState:
        alive = sum(1 for worker in self._workers if worker.alive)
        return WorkersState("process", len(self._workers), alive, self._restarts)
