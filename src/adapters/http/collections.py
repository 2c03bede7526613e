"""The collection routes. A body that holds an image or an embedding goes to an inference worker
(parsed and embedded there); the gallery's work runs on its own small thread pool, off the event
loop; the loop only reads bytes and writes answers. An import's lines are split, checked and staged
on those threads too (`ImportStager`), and stored in one transaction once the body is complete."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeVar

import msgspec
import numpy as np
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import InternalServerException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from adapters.http.admission import BodyBudget
from adapters.http.auth import caller_scope
from adapters.http.controllers import FaceWork
from adapters.http.inputs import AnyRequest, BodyTimeoutError, ClientDisconnectedError
from adapters.http.openapi import COLLECTION_ERRORS, GALLERY_BODY, IMPORT_BODY, IMPORT_ERRORS, with_body
from adapters.inference.jobs import EmbedForGallery, JobResult
from adapters.metrics import Metrics
from adapters.wire import collections as wire
from adapters.wire.bodies import GalleryInput, RequestTooLarge, gallery_embedding
from domain.access import Verb
from domain.errors import FaceServiceError, InvalidImport, InvalidInput, StoreUnavailable
from domain.gallery import FaceRecord, ImportOutcome, StoreHealth
from domain.ports import FaceGallery
from domain.use_cases.collections import CollectionHeader, Collections, Enrollment, EnrollOptions, nothing_kept

T = TypeVar("T")
SMALL_BODY = 64 * 1024  # names and thresholds: no reason to read more on the event loop
EXPORT_CHUNK = 256  # faces per chunk of an export stream
IMPORT_FEED_BYTES = 1 << 20  # an import's body is handed to a gallery thread this much at a time
NDJSON = "application/x-ndjson"


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

    async def run(self, work: Callable[[Collections], T]) -> T:
        return await self._pool.run(lambda: work(self._collections()))

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


Name = Annotated[str, PathParameter(description="The collection's name: 1 to 64 letters, digits, '.', '_' or '-'")]
ExternalId = Annotated[str, PathParameter(description="The subject: the caller's own id for the person")]
FaceId = Annotated[str, PathParameter(description="A face's id, as enrollment answered it")]


def gallery_post(
    path: str, operation_id: str, summary: str, status_code: int, more: dict[int, ResponseSpec] | None = None
) -> post:
    """A POST route whose body is an image or an embedding (GALLERY_BODY), with the collection errors."""
    return post(
        path,
        operation_id=operation_id,
        summary=summary,
        status_code=status_code,
        operation_class=with_body(GALLERY_BODY),
        responses={**COLLECTION_ERRORS, **(more or {})},
    )


def enroll_options(face: str, min_face_size: int, min_confidence: float) -> EnrollOptions:
    return EnrollOptions(largest=face == "largest", min_face_size=min_face_size, min_confidence=min_confidence)


def embedding_here(content_type: str, body: bytes) -> JobResult | None:
    """A small JSON body holding an embedding needs no worker: parsed here, on the loop, where a body
    of at most SMALL_BODY bytes is constant work (a 512-D embedding is about 11 KB of JSON)."""
    if len(body) > SMALL_BODY:
        return None
    given = gallery_embedding(content_type, body)
    return JobResult(200, gallery_input=given) if given is not None else None


async def gallery_input(request: AnyRequest, faces: FaceWork, all_faces: bool) -> GalleryInput:
    """The faces of the body's image, embedded in a worker, or the embedding it holds."""
    result = await faces.job(request, EmbedForGallery, all_faces, answer_here=embedding_here)
    assert result.gallery_input is not None
    return result.gallery_input


class CollectionController(Controller):
    path = "/collections"
    tags = ("collections",)

    @post(
        "/",
        operation_id="createCollection",
        summary="Create a collection",
        request_max_body_size=SMALL_BODY,
        responses=COLLECTION_ERRORS,
    )
    async def create(
        self, request: AnyRequest, data: JSONBody[wire.CreateCollectionRequest], gallery: NamedDependency[GalleryWork]
    ) -> wire.CollectionResponse:
        """A named gallery pinned to the service's embedding model (its `model` id and dimension)."""
        caller_scope(request).require(Verb.MANAGE, data.name)
        info = await gallery.run(lambda c: c.create(data.name, data.threshold))
        return wire.collection(info)

    @get("/", operation_id="listCollections", summary="Every collection", responses=COLLECTION_ERRORS)
    async def list_collections(
        self, request: AnyRequest, gallery: NamedDependency[GalleryWork]
    ) -> wire.CollectionsResponse:
        """Every collection the API key's scope covers, with its counts and model."""
        scope = caller_scope(request)
        listed = await gallery.run(lambda c: c.all())
        return wire.CollectionsResponse([wire.collection(c) for c in listed if scope.sees(c.name)])

    @get("/{name:str}", operation_id="getCollection", summary="A collection", responses=COLLECTION_ERRORS)
    async def get_collection(self, name: Name, gallery: NamedDependency[GalleryWork]) -> wire.CollectionResponse:
        """Counts of subjects and faces, the model every vector must come from, threshold, created_at."""
        return wire.collection(await gallery.run(lambda c: c.get(name)))

    @delete(
        "/{name:str}",
        operation_id="deleteCollection",
        summary="Delete a collection and every face in it",
        responses=COLLECTION_ERRORS,
    )
    async def delete_collection(self, name: Name, gallery: NamedDependency[GalleryWork]) -> None:
        """Every subject and face of the collection is removed from the store, durably, before the answer."""
        await gallery.run(lambda c: c.delete(name))
        gallery.metrics.gallery_deletions.labels(store=gallery.store(), kind="collection").inc()

    @gallery_post(
        "/{name:str}/subjects/{external_id:str}/faces",
        "enrollFace",
        "Enroll a face of a subject",
        201,
        {
            200: ResponseSpec(
                data_container=wire.EnrollResponse,
                description="The same image was enrolled for this subject before: that face, `duplicate: true`",
                generate_examples=False,
            )
        },
    )
    async def enroll(
        self,
        request: AnyRequest,
        name: Name,
        external_id: ExternalId,
        faces: NamedDependency[FaceWork],
        gallery: NamedDependency[GalleryWork],
        face: Annotated[
            Literal["one", "largest"], QueryParameter(description="`largest`: take the largest of several faces")
        ] = "one",
        min_face_size: Annotated[
            int, QueryParameter(ge=0, le=10_000, description="pixels, the face box's shorter side")
        ] = 0,
        min_confidence: Annotated[float, QueryParameter(ge=0, le=1)] = 0.0,
    ) -> Response[wire.EnrollResponse]:
        """From an image (multipart `file` or `image_base64`: exactly one face unless `face=largest`) or
        from `{embedding, model}`. The same image again for the same subject returns the face already
        enrolled (`duplicate: true`, 200), never a copy. Creates the subject on its first face."""
        given = await gallery_input(request, faces, all_faces=False)
        options = enroll_options(face, min_face_size, min_confidence)

        def enroll(c: Collections) -> Enrollment:
            if given.extraction is not None:
                return c.enroll_extraction(name, external_id, given.extraction, given.source_digest, options)
            return c.enroll_embedding(name, external_id, given.embedding or [], given.model or "")

        enrolled = await gallery.run(enroll)
        gallery.metrics.gallery_enrollments.labels(
            store=gallery.store(), outcome="duplicate" if enrolled.duplicate else "new"
        ).inc()
        body = wire.enrollment(enrolled)
        return Response(body, status_code=200 if enrolled.duplicate else 201)

    @get(
        "/{name:str}/subjects",
        operation_id="listSubjects",
        summary="Subjects, a page at a time",
        responses=COLLECTION_ERRORS,
    )
    async def list_subjects(
        self,
        name: Name,
        gallery: NamedDependency[GalleryWork],
        after: Annotated[str | None, QueryParameter(description="the `next` cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> wire.SubjectsResponse:
        """Ordered by external id; pass `next` as `after` for the next page (null on the last)."""
        return wire.subjects(await gallery.run(lambda c: c.subjects(name, after, limit)), limit)

    @get(
        "/{name:str}/subjects/{external_id:str}",
        operation_id="getSubject",
        summary="A subject and its faces",
        responses=COLLECTION_ERRORS,
    )
    async def get_subject(
        self,
        name: Name,
        external_id: ExternalId,
        gallery: NamedDependency[GalleryWork],
        include: Annotated[
            Literal["embeddings"] | None, QueryParameter(description="`embeddings` adds the vectors")
        ] = None,
    ) -> wire.SubjectResponse:
        """Its faces, oldest first, without their vectors unless `include=embeddings`."""
        info, enrolled = await gallery.run(lambda c: c.subject(name, external_id))
        return wire.subject(info, enrolled, include == "embeddings")

    @delete(
        "/{name:str}/subjects/{external_id:str}",
        operation_id="deleteSubject",
        summary="Forget a subject",
        status_code=200,
        responses=COLLECTION_ERRORS,
    )
    async def delete_subject(
        self, name: Name, external_id: ExternalId, gallery: NamedDependency[GalleryWork]
    ) -> wire.DeletedSubjectResponse:
        """The subject and all its faces are removed from the store and the index, durably, before the answer."""
        removed = await gallery.run(lambda c: c.delete_subject(name, external_id))
        gallery.metrics.gallery_deletions.labels(store=gallery.store(), kind="subject").inc()
        return wire.DeletedSubjectResponse(external_id, removed)

    @delete(
        "/{name:str}/faces/{face_id:str}",
        operation_id="deleteFace",
        summary="Forget one face",
        status_code=200,
        responses=COLLECTION_ERRORS,
    )
    async def delete_face(
        self, name: Name, face_id: FaceId, gallery: NamedDependency[GalleryWork]
    ) -> wire.DeletedFaceResponse:
        """One face, by id (a subject left without faces goes with it)."""
        removed = await gallery.run(lambda c: c.delete_face(name, face_id))
        gallery.metrics.gallery_deletions.labels(store=gallery.store(), kind="face").inc()
        return wire.DeletedFaceResponse(removed.face_id, removed.external_id)

    @gallery_post("/{name:str}/search", "searchCollection", "Who is this: the best subjects for each face", 200)
    async def search(
        self,
        request: AnyRequest,
        name: Name,
        faces: NamedDependency[FaceWork],
        gallery: NamedDependency[GalleryWork],
        which: Annotated[
            Literal["all", "largest"],
            QueryParameter(name="faces", description="every face of the image, or the largest"),
        ] = "all",
        top_k: Annotated[int | None, QueryParameter(ge=1, le=100, description="subjects per face (default 5)")] = None,
    ) -> wire.SearchResponse:
        """By image (every face, or the largest with `faces=largest`) or by `{embedding, model}`: for
        each query face the `top_k` best subjects with their best face, and the match decision against
        the collection's threshold."""
        given = await gallery_input(request, faces, all_faces=which == "all")
        k = top_k if top_k is not None else given.top_k

        def search(c: Collections) -> Any:
            if given.extraction is not None:
                return c.search_extraction(name, given.extraction, k)
            return c.search_embedding(name, given.embedding or [], given.model or "", k)

        began = time.perf_counter()
        result = await gallery.run(search)
        store = gallery.store()
        gallery.metrics.gallery_search_seconds.labels(store=store, method=result.method).observe(
            time.perf_counter() - began
        )
        gallery.metrics.gallery_searched_faces.labels(store=store).observe(result.searched)
        return wire.search(result)

    @gallery_post("/{name:str}/subjects/{external_id:str}/verify", "verifySubject", "Is this that subject", 200)
    async def verify(
        self,
        request: AnyRequest,
        name: Name,
        external_id: ExternalId,
        faces: NamedDependency[FaceWork],
        gallery: NamedDependency[GalleryWork],
    ) -> wire.VerifyResponse:
        """The similarity of the image's largest face (or the embedding) to the subject's best face,
        and the match decision against the collection's threshold."""
        given = await gallery_input(request, faces, all_faces=False)

        def verify(c: Collections) -> Any:
            if given.extraction is not None:
                return c.verify_extraction(name, external_id, given.extraction)
            return c.verify_embedding(name, external_id, given.embedding or [], given.model or "")

        return wire.verification(await gallery.run(verify))

    @get(
        "/{name:str}/export",
        operation_id="exportCollection",
        summary="Export a collection",
        media_type=NDJSON,
        responses=COLLECTION_ERRORS,
    )
    async def export(self, name: Name, gallery: NamedDependency[GalleryWork]) -> Stream:
        """JSON lines: the collection (with its model id), then one line per face (the vector as base64
        of little-endian float32, the subject, where it came from), streamed."""
        header, records = await gallery.run(lambda c: c.export(name))
        return Stream(
            export_chunks(header, records),
            media_type=NDJSON,
            headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
        )

    @post(
        "/{name:str}/import",
        operation_id="importCollection",
        summary="Import an export into a collection",
        status_code=200,
        request_max_body_size=None,  # bounded below by MAX_IMPORT_BYTES, read as a stream
        operation_class=with_body(IMPORT_BODY),
        responses=IMPORT_ERRORS,
    )
    async def import_collection(
        self, request: Request[Any, Any, Any], name: Name, gallery: NamedDependency[GalleryWork]
    ) -> wire.ImportResponse:
        """Body: an export (JSON lines). All or nothing: every line is checked as it arrives (a bad one
        is answered at once, 400 `invalid_import` with its `line`), and the faces are stored in one
        transaction once the whole body is in; any error, or a crash, leaves nothing of the import.
        The collection is created, pinned to the export's model, when it does not exist; importing
        into a collection of another model is refused (409 `model_mismatch`). Faces get new ids; a
        face already there for the same subject and source is kept once, so an import can be sent again."""
        outcome = await gallery.import_body(request, name)
        return wire.ImportResponse(name, outcome.added)


def export_chunks(header: CollectionHeader, records: Iterable[FaceRecord]) -> Iterator[bytes]:
    """An export as JSON lines, EXPORT_CHUNK faces to a chunk (HTTP streams them; the CLI writes them)."""
    encoder = msgspec.json.Encoder()
    yield encoder.encode(wire.export_header(header)) + b"\n"
    chunk: list[bytes] = []
    for record in records:
        chunk.append(encoder.encode(wire.exported_face(record)))
        if len(chunk) == EXPORT_CHUNK:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"


class _Staged(msgspec.Struct, array_like=True):
    """A checked face, waiting in an import's temporary file."""

    face_id: str
    external_id: str
    embedding: bytes  # float32, native order
    bbox: tuple[float, float, float, float] | None
    confidence: float | None
    source_digest: str
    created_at: datetime


class ImportStager:
    """An import's body, line by line, on a gallery thread: the header and each face are checked as they
    arrive (a bad line is refused at once, with its number; a line longer than MAX_IMPORT_LINE_BYTES
    as soon as it is), and the checked faces wait in a temporary file, deleted when closed (or when
    the process dies). `records` gives them back to be stored in one transaction: nothing reaches the
    store before the whole body has arrived and checked out. Shared by HTTP and the CLI."""

    def __init__(self, collections: Collections, name: str, max_line_bytes: int, spool_dir: Path | None) -> None:
        self._collections = collections
        self._name = name
        self._max_line = max_line_bytes
        self._pending = bytearray()  # the line that has not ended yet
        self._lines = 0  # lines ended so far
        self._encoder = msgspec.msgpack.Encoder()
        self.header: CollectionHeader | None = None
        self.faces = 0
        try:
            self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="face-import-", dir=spool_dir)  # noqa: SIM115
        except OSError as exc:
            raise _unstaged(exc) from exc

    def feed(self, data: bytes) -> None:
        """The next bytes of the body."""
        view = memoryview(data)
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._extend(view[start:end])
            line = bytes(self._pending)
            self._pending.clear()
            self._take(line)
            start = end + 1
        self._extend(view[start:])

    def finish(self) -> None:
        """The body has ended: its last line (it needs no newline), then ready for `records`."""
        if self._pending:
            line = bytes(self._pending)
            self._pending.clear()
            self._take(line)
        if self.header is None:
            raise nothing_kept(InvalidInput("The import is empty; send an export's JSON lines", code="invalid_import"))
        try:
            self._spool.flush()
            self._spool.seek(0)
        except OSError as exc:
            raise _unstaged(exc) from exc

    def records(self) -> Iterator[FaceRecord]:
        """The checked faces, in the order they came."""
        decoder = msgspec.msgpack.Decoder(_Staged)
        read = self._spool.read
        while size := read(4):
            staged = decoder.decode(read(int.from_bytes(size, "big")))
            vector = np.frombuffer(staged.embedding, dtype=np.float32)
            yield FaceRecord(
                staged.face_id,
                staged.external_id,
                vector,
                staged.bbox,
                staged.confidence,
                staged.source_digest,
                staged.created_at,
            )

    def close(self) -> None:
        self._spool.close()

    def _extend(self, piece: memoryview) -> None:
        if len(self._pending) + len(piece) > self._max_line:
            raise nothing_kept(LineTooLong(self._lines + 1, self._max_line))
        self._pending += piece

    def _take(self, line: bytes) -> None:
        self._lines += 1
        if not line.strip():
            return
        if self.header is None:
            exported = _decoded(line, wire.ExportHeader, self._lines)
            self.header = self._collections.import_header(self._name, wire.imported_header(exported))
            return
        try:
            given = wire.imported_face(_decoded(line, wire.ExportedFace, self._lines))
        except ValueError as error:
            raise nothing_kept(InvalidImport(str(error), self._lines)) from None
        face = self._collections.import_face(self.header, given, self._lines)
        vector = np.ascontiguousarray(face.embedding, dtype=np.float32)
        staged = _Staged(
            face.face_id,
            face.external_id,
            vector.tobytes(),
            face.bbox,
            face.confidence,
            face.source_digest,
            face.created_at,
        )
        payload = self._encoder.encode(staged)
        try:
            self._spool.write(len(payload).to_bytes(4, "big") + payload)
        except OSError as exc:
            raise _unstaged(exc) from exc
        self.faces += 1


class LineTooLong(RequestTooLarge):
    code = "import_line_too_long"

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line}: longer than MAX_IMPORT_LINE_BYTES ({limit} bytes)")
        self.line = line


def _decoded(line: bytes, kind: type[T], number: int) -> T:
    try:
        return msgspec.json.decode(line, type=kind)
    except msgspec.ValidationError as error:
        raise nothing_kept(InvalidImport(str(error), number)) from None
    except (msgspec.DecodeError, RecursionError):
        raise nothing_kept(InvalidImport("not a JSON object", number)) from None


def _unstaged(error: OSError) -> FaceServiceError:
    """The temporary file failed (a full disk): said without its path."""
    return nothing_kept(
        StoreUnavailable(f"the import cannot be staged on disk: {error.strerror or type(error).__name__}")
    )


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
