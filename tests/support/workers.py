"""A worker initializer for the worker-process tests: jobs whose body says what to do, so a test can
make a worker crash, hang or fail on purpose. Imported by the forkserver's children by name."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

from adapters.inference.jobs import Job, JobResult
from domain.use_cases.service_info import ServiceInfo

INFO = ServiceInfo("test", "test", "test:00000000", 512, ["none"], ["auto"], "0")


def perform(job: Job) -> JobResult:
    if job.body == b"crash":
        os._exit(3)
    if job.body == b"hang":
        time.sleep(3600)
    if job.body.startswith(b"sleep"):
        time.sleep(float(job.body.removeprefix(b"sleep")))
    answer = {"pid": os.getpid(), "sha256": hashlib.sha256(job.body).hexdigest(), "request_id": job.request_id}
    return JobResult(status=200, body=json.dumps(answer).encode())


def initialize(fail: bool = False) -> tuple[Callable[[Job], JobResult], ServiceInfo]:
    if fail:
        raise ValueError("model file /models/missing.onnx could not be loaded")
    return perform, INFO


def initialize_unless(flag: str) -> tuple[Callable[[Job], JobResult], ServiceInfo]:
    """Starts until the file `flag` exists: a worker whose replacement cannot start."""
    if os.path.exists(flag):
        raise ValueError("model file /models/missing.onnx could not be loaded")
    return perform, INFO
