"""The routes. Each face handler reads its body and hands it to an inference worker, which runs the
use case and answers with the contract's JSON."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import RequestBody
from litestar.params import QueryParameter

from adapters.http import inputs
from adapters.http.admission import AdmissionQueue, BodyBudget
from adapters.http.inputs import AnyRequest
from adapters.http.openapi import BATCH_BODY, COMPARE_BODY, ERROR_RESPONSES, IMAGE_BODY, with_body
from adapters.inference.jobs import Compare, Detect, Extract, ExtractBatch, Job, JobResult
from adapters.inference.pool import InferenceRunner
from adapters.metrics import Metrics
from adapters.wire import bodies, presenters
from adapters.wire.schemas import (
    BatchExtractResponse,
    CompareFacesResponse,
    ExtractEmbeddingResponse,
    HealthResponse,
    VerifyFaceResponse,
)
from domain.gallery import StoreHealth

JobMaker = Callable[[str, bytes, str], Job]  # (content type, body, request id) -> the job to run

AllFaces = Annotated[bool, QueryParameter(description="Addition: list every face, largest first, in `faces`")]


def face_route(path: str, operation_id: str, summary: str, body: RequestBody) -> post:
    """A POST route of the face API: 200 on success (no face is a success), the documented errors."""
    return post(
        path,
        operation_id=operation_id,
        summary=summary,
        status_code=200,
        operation_class=with_body(body),
        responses=ERROR_RESPONSES,
    )


class JobError(Exception):
    """A job's answer that is an error, already rendered as JSON by the worker."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class JobCrashed(Exception):
    """A job failed unexpectedly in its worker; the worker's traceback goes to the log."""

    def __init__(self, worker_traceback: str) -> None:
        super().__init__("the inference job failed")
        self.worker_traceback = worker_traceback


class FaceWork:
    """A face route's way to its answer. On the event loop, only constant work: check the media
    type, read the body (bounded in bytes, time and bytes in flight), take an admission slot; the
    rest runs in an inference worker, which answers with the encoded JSON."""

    def __init__(
        self,
        runner: InferenceRunner,
        admission: AdmissionQueue,
        bodies: BodyBudget,
        metrics: Metrics,
        body_timeout_seconds: float,
    ) -> None:
        self.runner = runner
        self.admission = admission
        self._bodies = bodies
        self._metrics = metrics
        self._body_timeout = body_timeout_seconds

    async def job(
        self,
        request: AnyRequest,
        kind: type[Job],
        all_faces: bool = False,
        answer_here: Callable[[str, bytes], JobResult | None] | None = None,
    ) -> JobResult:
        """Run a job of this `kind` on the request's body in a worker; a failed job raises its error.
        `answer_here` may answer a small body without a worker (it must be constant work)."""
        content_type = request.headers.get("content-type", "")
        bodies.check_media_type(content_type, multipart_allowed=kind.multipart_allowed)
        with self._bodies.reserve(inputs.declared_length(request)):
            body = await inputs.read_body(request, self._body_timeout)
            result = answer_here(content_type, body) if answer_here is not None else None
            if result is None:
                with self.admission.slot():
                    request_id = request.scope.get("state", {}).get("request_id", "")
                    result = await self.runner.run(kind(content_type, body, all_faces, request_id))
        return self._finished(request, result)

    @contextlib.asynccontextmanager
    async def held_body(self, request: AnyRequest) -> AsyncIterator[Callable[[JobMaker], Awaitable[JobResult]]]:
        """The request's body, read once (bounded as `job` bounds it) and held while the caller runs
        several jobs on it in turn, each in its own admission slot; what the caller does between them
        (a gallery look-up) needs no slot. Each job raises its error as `job` does."""
        content_type = request.headers.get("content-type", "")
        bodies.check_media_type(content_type, multipart_allowed=True)
        request_id = request.scope.get("state", {}).get("request_id", "")
        with self._bodies.reserve(inputs.declared_length(request)):
            body = await inputs.read_body(request, self._body_timeout)

            async def run(make: JobMaker) -> JobResult:
                with self.admission.slot():
                    result = await self.runner.run(make(content_type, body, request_id))
                return self._finished(request, result)

            yield run

    def _finished(self, request: AnyRequest, result: JobResult) -> JobResult:
        for stage, seconds in result.stages:
            self._metrics.stage(stage, seconds)
        for count in result.face_counts:
            self._metrics.faces(count)
        request.state.faces = result.faces
        if result.failure is not None:
            raise JobCrashed(result.failure)
        if result.status != 200:
            raise JobError(result.status, result.body)
        return result

    async def answer(self, request: AnyRequest, kind: type[Job], all_faces: bool = False) -> Any:
        """A face route's answer, already encoded by the worker: Litestar's msgspec encoder writes a
        Raw as it is."""
        return msgspec.Raw((await self.job(request, kind, all_faces)).body)


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get(operation_id="health", summary="Liveness and readiness")
    async def health(
        self,
        request: AnyRequest,
        runner: NamedDependency[InferenceRunner],
        store_health: NamedDependency[Any],
        callers: NamedDependency[Any],
        hidden_locations: NamedDependency[Any],
    ) -> Response[HealthResponse]:
        """No key needed: without a valid API key the answer is `status` alone (probes need no more);
        with one, also the model, the execution providers, the inference workers and the gallery's
        store, with the collections the key's scope covers and the model each needs (the store's
        detail only for a key on every collection; never a file path or URL). Models are loaded and
        warmed up before the server accepts connections, so a response means ready. 503 when no
        inference worker is alive; a store that is down leaves the face routes working (`gallery.ok`
        false)."""
        state = runner.state()
        status_code = 200 if state.alive else 503
        found = callers.identify(request)
        if found is None:
            status = presenters.health_status(state.workers, state.alive)
            return Response(HealthResponse(status), status_code=status_code)
        scope = found[1].scope
        store = await store_health.check()
        pinned = [(name, model) for name, model in store_health.pinned if scope.sees(name)]
        quarantined = [broken for broken in store.quarantined if scope.sees(broken.name)]
        if not scope.all_collections:  # the store's detail counts every collection: not for a tenant's key
            store = StoreHealth(store.store, store.ok, "ok" if store.ok else "unavailable")
        gallery = presenters.gallery_health(store, pinned, hidden_locations, quarantined)
        health = presenters.health(runner.info, state.isolation, state.workers, state.alive, state.restarts, gallery)
        return Response(health, status_code=status_code)


class FaceController(Controller):
    path = "/"
    tags = ("faces",)

    @face_route("/verify-face", "verifyFace", "Is there a face, and where", IMAGE_BODY)
    async def verify_face(
        self, request: AnyRequest, faces: NamedDependency[FaceWork], all_faces: AllFaces = False
    ) -> VerifyFaceResponse:
        """Detect faces without computing embeddings. The top-level fields describe the largest face."""
        return await faces.answer(request, Detect, all_faces)  # type: ignore[no-any-return]

    @face_route("/extract-embedding", "extractEmbedding", "Embed the face in an image", IMAGE_BODY)
    async def extract_embedding(
        self, request: AnyRequest, faces: NamedDependency[FaceWork], all_faces: AllFaces = False
    ) -> ExtractEmbeddingResponse:
        """The 512-D, L2-normalised embedding of the largest face, and the model that made it."""
        return await faces.answer(request, Extract, all_faces)  # type: ignore[no-any-return]

    @face_route("/batch-extract", "batchExtract", "Embed the faces of many images", BATCH_BODY)
    async def batch_extract(
        self, request: AnyRequest, faces: NamedDependency[FaceWork], all_faces: AllFaces = False
    ) -> BatchExtractResponse:
        """JSON `images` (base64) or several multipart `file` parts. One unusable image gets its own
        error in `results`; it never fails the others."""
        return await faces.answer(request, ExtractBatch, all_faces)  # type: ignore[no-any-return]

    @face_route("/compare-faces", "compareFaces", "Cosine similarity of embeddings", COMPARE_BODY)
    async def compare_faces(self, request: AnyRequest, faces: NamedDependency[FaceWork]) -> CompareFacesResponse:
        """One to one (`embedding_a`, `embedding_b`) or one to many (`embedding_a`, `candidates`)."""
        return await faces.answer(request, Compare)  # type: ignore[no-any-return]
