"""One inference worker process: what it runs (`worker_main`) and the parent's handle on it
(`WorkerProcess`), which starts it, feeds it one job at a time over a pipe, and replaces it when it
dies or overruns its time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from adapters.inference.executor import IDLE_TRIM_SECONDS, trim_if_heap_over, trim_memory
from adapters.inference.jobs import Job, JobResult
from domain.use_cases.service_info import ServiceInfo

logger = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 300.0  # model loading on a cold, busy machine


class WorkerFailed(Exception):
    """A job's worker crashed, or overran its time, and was replaced. Safe to retry."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


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
            if not connection.poll(IDLE_TRIM_SECONDS):
                trim_memory()  # idle: give back what the last jobs freed (executor.py says why not sooner)
            job = connection.recv()
        except (EOFError, OSError):
            return
        result = perform(job)
        connection.send(result)
        trim_if_heap_over()


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
