"""The use cases' ServiceObserver inside an inference worker: it records per job (per thread), and
the job's result carries the records back to the process that owns the metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StageRecorder:
    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def recording(self, stages: list[tuple[str, float]], face_counts: list[int]) -> Iterator[None]:
        self._local.records = (stages, face_counts)
        try:
            yield
        finally:
            self._local.records = None

    def stage(self, name: str, seconds: float) -> None:
        records = getattr(self._local, "records", None)
        if records is not None:
            records[0].append((name, seconds))

    def faces(self, count: int) -> None:
        records = getattr(self._local, "records", None)
        if records is not None:
            records[1].append(count)


RECORDER = StageRecorder()
