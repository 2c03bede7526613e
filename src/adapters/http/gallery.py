"""The gallery's side of the collection routes: its own threads (its calls block on disk and
network; never on the event loop), its last known health for /health, and an import's body read in
time and in bounded pieces, checked and staged on those threads (`ImportStager`), then stored in one
transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from litestar.exceptions import InternalServerException

from adapters.http import inputs
from adapters.http.admission import BodyBudget
from adapters.http.clustering import ClusterJobs
from adapters.http.inputs import AnyRequest, BodyTimeoutError, ClientDisconnectedError
from adapters.metrics import Metrics
from adapters.wire.bodies import RequestTooLarge, json_from
from adapters.wire.collection_export import IMPORT_FEED_BYTES, ImportStager
from domain.errors import FaceServiceError
from domain.gallery import ImportOutcome, StoreHealth
from domain.ports import FaceGallery
from domain.use_cases.collections import Collections, nothing_kept

T = TypeVar("T")


class GalleryPool:
    """The gallery's threads (its calls block on disk and network) and its last known health, which
    /health reports without waiting on a store that hangs."""

    CHECK_SECONDS = 2.0

    def __init__(self, gallery: Callable[[], FaceGallery], store: str, threads: int = 4) -> None:
        self._gallery = gallery
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._checker: ThreadPoolExecutor | None = None  # /health's own thread: never behind busy gallery calls
        self.last = StoreHealth(store, False, "not checked yet")
        self.pinned: list[tuple[str, str]] = []  # (collection, model id), as of the last check

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:  # started again after close: test clients open one app several times
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="gallery")
        return self._executor

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def _run_check(self, work: Callable[[], T]) -> T:
        if self._checker is None:
            self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-health")
        return await asyncio.get_running_loop().run_in_executor(self._checker, work)

    async def check(self) -> StoreHealth:
        """The store's health (opening it if it is not open yet) and each collection's model, within
        CHECK_SECONDS."""

        def probe() -> StoreHealth:
            try:
                store = self._gallery()
                health = store.health()
                if health.ok:
                    self.pinned = [(c.name, c.model_id) for c in store.collections()]
                return health
            except FaceServiceError as error:
                return StoreHealth(self.last.store, False, error.message)

        try:
            self.last = await asyncio.wait_for(self._run_check(probe), self.CHECK_SECONDS)
        except TimeoutError:
            self.last = StoreHealth(self.last.store, False, f"no answer within {self.CHECK_SECONDS:.0f} s")
        return self.last

    def close(self) -> None:
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.shutdown(wait=False, cancel_futures=True)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(FaceServiceError):
            self._gallery().close()


@dataclass(frozen=True, slots=True)
class ImportLimits:
    max_bytes: int  # MAX_IMPORT_BYTES
    max_line_bytes: int  # MAX_IMPORT_LINE_BYTES
    body_timeout_seconds: float  # BODY_TIMEOUT_SECONDS, for each `timeout_bytes` of the body
    timeout_bytes: int  # MAX_REQUEST_BYTES
    spool_dir: Path | None  # where the checked faces wait (None: the system's temporary folder)

    @property
    def held_bytes(self) -> int:
        """The most of its body an import holds in memory: one feed and an unfinished line."""
        return IMPORT_FEED_BYTES + self.max_line_bytes


class GalleryWork:
    """The gallery's side of a collection route: the use cases, run on the gallery's threads."""

    def __init__(
        self,
        collections: Callable[[], Collections],
        pool: GalleryPool,
        metrics: Metrics,
        imports: ImportLimits,
        bodies: BodyBudget,
    ) -> None:
        self._collections = collections  # a provider: retried after a store that could not open
        self._pool = pool
        self.metrics = metrics
        self.imports = imports
        self._bodies = bodies
        # One import is stored at a time: its transaction holds a gallery thread (and, with SQLite,
        # the database) for as long as it takes; more at once would leave no thread for the rest.
        self._storing = asyncio.Lock()
        self.clustering = ClusterJobs(collections)

    async def run(self, work: Callable[[Collections], T]) -> T:
        return await self._pool.run(lambda: work(self._collections()))

    async def json_body(self, request: AnyRequest, kind: type[T]) -> T:
        """The body of a JSON-only route, read as the face routes read theirs (bounded in bytes in
        flight and time; the route's `request_max_body_size` bounds its size) and parsed here, on
        the loop: such a route's body is small, so this is constant work."""
        with self._bodies.reserve(inputs.declared_length(request)):
            body = await inputs.read_body(request, self.imports.body_timeout_seconds)
        return json_from(request.headers.get("content-type", ""), body, kind)

    def store(self) -> str:
        return self._collections().store

    async def import_body(self, request: AnyRequest, name: str) -> ImportOutcome:
        """Read, check and stage the body (bounded in bytes held, line length, total size and time),
        then store it in one transaction."""
        limits = self.imports
        with self._bodies.reserve(limits.held_bytes):
            stager = await self.run(lambda c: ImportStager(c, name, limits.max_line_bytes, limits.spool_dir))
            try:
                async for data in import_chunks(request, limits):
                    await self._pool.run(lambda data=data: stager.feed(data))  # type: ignore[misc]
                await self._pool.run(stager.finish)
            except FaceServiceError as error:
                stager.close()
                # The caller may still be sending: close the connection rather than read the rest.
                error.close_connection = True  # type: ignore[attr-defined]
                raise
            except BaseException:
                stager.close()
                raise
        header = stager.header
        assert header is not None  # finish() refuses an import without one

        started = False

        def store(collections: Collections) -> ImportOutcome:
            nonlocal started
            started = True
            try:
                return collections.import_faces(name, header, stager.records())
            finally:
                stager.close()  # on the thread that reads it, whatever becomes of the request

        try:
            async with self._storing:
                return await self.run(store)
        finally:
            if not started:  # cancelled before the transaction began
                stager.close()


async def import_chunks(request: AnyRequest, limits: ImportLimits) -> AsyncIterator[bytes]:
    """The body in pieces of up to IMPORT_FEED_BYTES. At most MAX_IMPORT_BYTES in all (413), and in time:
    the caller has BODY_TIMEOUT_SECONDS for every MAX_REQUEST_BYTES it sends (408, connection closed),
    so a large import may take as long as it needs at a sane pace, and a trickle is cut. Only the
    time spent waiting for the caller counts."""
    loop = asyncio.get_running_loop()
    stream = request.stream().__aiter__()
    received, waited = 0, 0.0
    buffer = bytearray()
    while True:
        allowed = limits.body_timeout_seconds * (1 + received // limits.timeout_bytes)
        began = loop.time()
        try:
            async with asyncio.timeout(allowed - waited):
                chunk = await anext(stream, None)
        except TimeoutError:
            raise BodyTimeoutError(headers={"Connection": "close"}) from None
        except InternalServerException:  # Litestar's stream says so for a client that went away
            raise ClientDisconnectedError() from None
        waited += loop.time() - began
        if chunk is None:
            break
        received += len(chunk)
        if received > limits.max_bytes:
            too_large = RequestTooLarge(f"The import is larger than MAX_IMPORT_BYTES ({limits.max_bytes} bytes)")
            raise nothing_kept(too_large)
        buffer += chunk
        if len(buffer) >= IMPORT_FEED_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
