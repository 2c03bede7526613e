"""One inference worker process: what it runs (`worker_main`) and the parent's handle on it
(`WorkerProcess`), which starts it, feeds it jobs over a pipe (the next one while the last one runs),
and replaces it when it dies or overruns its time."""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
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
    # The next job is read while one runs, on a thread of its own: read after the answer, its bytes
    # came only as fast as the busy parent could write them (1-2 ms a phone photo with the worker
    # idle). The parent sends at most JOBS_PER_WORKER, so one job at most waits here.
    jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
    threading.Thread(target=_read_jobs, args=(connection, jobs), name="job-reader", daemon=True).start()
    while True:
        try:
            job = jobs.get(timeout=IDLE_TRIM_SECONDS)
        except queue.Empty:
            trim_memory()  # idle: give back what the last jobs freed (executor.py says why not sooner)
            job = jobs.get()
        if job is None:  # the pipe closed: the parent stopped this worker
            return
        result = perform(job)
        try:
            connection.send(result)
        except OSError:
            return
        trim_if_heap_over()


def _read_jobs(connection: Connection, jobs: queue.SimpleQueue[Job | None]) -> None:
    try:
        while True:
            jobs.put(receive_job(connection))
    except BaseException:  # the pipe closed, or a message that cannot be read: the worker ends
        jobs.put(None)


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A job as it crosses the pipe: its fields pickled, its body (a photo: megabytes) written as it
    is, which spares the copies into and out of a pickle on both sides. Made before the pipe is
    taken, so that what can fail (pickling) fails before anything is written."""

    header: bytes
    body: memoryview

    @classmethod
    def of(cls, job: Job) -> JobMessage:
        return cls(bytes(ForkingPickler.dumps(replace(job, body=b""))), memoryview(job.body))

    def write(self, connection: Connection) -> None:
        connection.send_bytes(self.header)
        connection.send_bytes(self.body)


def receive_job(connection: Connection) -> Job:
    job: Job = pickle.loads(connection.recv_bytes())  # noqa: S301 - from the parent process, as Connection.recv
    return replace(job, body=connection.recv_bytes())


class WorkerProcess:
    """One worker process and the pipe to it, driven by up to JOBS_PER_WORKER threads of the parent
    at once: a job is sent while the one before it runs, so that the worker starts it the moment it
    has sent the previous result. Fed one at a time, a worker waited 4-5 ms between phone photos (the
    result's trip back, the parent's threads and event loop waking, the next photo's bytes sent):
    4% of its time (docs/performance.md, "Photo ingest through the CLI").

    Results come back in the order the jobs were sent; the job at the head of that line is the one
    running, and only it can crash the worker or overrun its time. When it does, the worker is
    replaced, that job fails, and the jobs sent behind it (never started) are sent again to the new
    worker.
    """

    def __init__(self, context: Any, initializer: Initializer, args: tuple[Any, ...], number: int) -> None:
        self._context = context
        self._initializer = initializer
        self._args = args
        self.number = number
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self.info: ServiceInfo | None = None
        self.in_flight = 0  # jobs given to it: kept by ProcessRunner on the event loop
        self.given = 0  # when it was last given one (ProcessRunner's count of jobs)
        self._sending = threading.Lock()  # one job written to the pipe at a time; held to start a worker
        self._turns = threading.Condition()  # guards the line and the generation
        self._line: deque[object] = deque()  # the jobs sent to this process, in order: the first runs
        self._generation = 0  # which process the line belongs to: moves on when one is replaced
        self._replacing = False  # no job is sent while a process is being replaced
        self._closed = False  # stopped for good: nothing is started or sent again
        self._head_since = 0.0  # when the job at the head began to run, as far as the parent knows

    def reopen(self) -> None:
        """Before starting it again after `stop` (an app started twice)."""
        with self._turns:
            self._closed = False

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

    @property
    def ready(self) -> bool:
        """It has a process to send jobs to (False while its replacement could not be started)."""
        return self._connection is not None

    def call(self, job: Job, timeout: float) -> JobResult:
        """Send a job and wait for its result. Raises WorkerFailed after replacing a worker that
        died or overran `timeout` on this job; a job queued behind another job's failure is sent
        again to the replacement, as is one the worker died before taking (once)."""
        message = JobMessage.of(job)
        resent_after_death = False
        while True:
            ticket = object()
            connection, generation = self._send(message, ticket)
            with self._turns:
                while self._generation == generation and self._line[0] is not ticket:
                    self._turns.wait()
                if self._closed:
                    raise WorkerFailed("The service is stopping", "worker_unavailable")
                if self._generation != generation:
                    continue  # the worker was replaced while this job waited behind another: never run
                began = self._head_since
            if connection is None:  # the worker was gone before it took this job (killed while idle)
                self._replace("died", generation)
                if not resent_after_death:
                    resent_after_death = True
                    continue
                raise WorkerFailed("The inference worker stopped during this request", "worker_crashed")
            return self._receive(connection, generation, began, timeout)

    def _send(self, message: JobMessage, ticket: object) -> tuple[Connection | None, int]:
        """Queue `ticket` in the line and write the job: (the pipe, its generation); the pipe is None
        when the worker died before taking the job."""
        while True:
            with self._turns:  # not to a process being replaced: its pipe is about to close
                while self._replacing and not self._closed:
                    self._turns.wait()
            with self._sending:
                if self._closed:
                    raise WorkerFailed("The service is stopping", "worker_unavailable")
                if self._connection is None:  # its replacement failed to start earlier: try once more
                    try:
                        self.start()
                    except (RuntimeError, OSError) as error:
                        raise WorkerFailed(
                            f"No inference worker could be started: {error}", "worker_unavailable"
                        ) from None
                connection = self._connection
                assert connection is not None
                with self._turns:
                    if self._replacing:
                        continue  # a replacement began meanwhile
                    generation = self._generation
                    if not self._line:
                        self._head_since = time.monotonic()
                    self._line.append(ticket)
                try:
                    message.write(connection)  # blocks while the job before it runs, until the worker reads it
                except OSError:
                    return None, generation
                except BaseException:
                    # Half a job may be in the pipe: this process cannot be trusted to read the next.
                    self._replace("was sent part of a job", generation, locked=True)
                    raise
                return connection, generation

    def _receive(self, connection: Connection, generation: int, began: float, timeout: float) -> JobResult:
        try:
            if not connection.poll(max(0.0, began + timeout - time.monotonic())):
                self._replace("overran JOB_TIMEOUT_SECONDS", generation)
                raise WorkerFailed("The inference took longer than JOB_TIMEOUT_SECONDS", "inference_timeout")
            result: JobResult = connection.recv()
        except (EOFError, OSError, TypeError, ValueError):  # TypeError, ValueError: closed by `stop`
            self._replace("died", generation)
            if self._closed:
                raise WorkerFailed("The service is stopping", "worker_unavailable") from None
            raise WorkerFailed("The inference worker stopped during this request", "worker_crashed") from None
        with self._turns:
            self._line.popleft()
            self._head_since = time.monotonic()
            self._turns.notify_all()
        return result

    def _replace(self, reason: str, generation: int, locked: bool = False) -> None:
        """Kill the process of `generation` and start another (none once stopped); the jobs behind
        the failed one are told to send themselves again. `locked`: the caller holds `_sending`."""
        with self._turns:
            if self._generation != generation or self._closed:
                return
            self._generation += 1
            self._replacing = True
            self._line.clear()
            self._turns.notify_all()
        logger.error("inference worker %d %s; starting a new one", self.number, reason)
        try:
            self._kill_process()  # first: a sender blocked writing to it fails and lets go of the lock
            with contextlib.nullcontext() if locked else self._sending:
                self._close_pipe()
                try:
                    self.start()
                except (RuntimeError, OSError) as error:  # tried again at its next job
                    logger.error("inference worker %d could not be restarted: %s", self.number, error)
        finally:
            with self._turns:
                self._replacing = False
                self._turns.notify_all()

    def _kill_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.join(5)

    def _close_pipe(self) -> None:
        """Under `_sending`: no thread is writing to the pipe."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        """For good: the jobs in its line fail (503 `worker_unavailable`), none is started again."""
        with self._turns:
            self._closed = True
            self._generation += 1
            self._line.clear()
            self._turns.notify_all()
        self._kill_process()  # a sender blocked writing to it fails and lets go of the lock
        with self._sending:
            self._close_pipe()
