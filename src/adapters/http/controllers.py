"""The routes. Each handler reads its input, runs one use case on the inference executor, and
maps the result to the contract's JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Annotated, TypeVar

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import RequestBody
from litestar.params import QueryParameter

from face_service.adapters.http import inputs
from face_service.adapters.http.admission import AdmissionQueue
from face_service.adapters.http.inputs import AnyRequest
from face_service.adapters.http.openapi import BATCH_BODY, COMPARE_BODY, ERROR_RESPONSES, IMAGE_BODY, with_body
from face_service.adapters.wire import presenters
from face_service.adapters.wire.schemas import (
    BatchExtractResponse,
    CompareFacesResponse,
    ExtractEmbeddingResponse,
    HealthResponse,
    VerifyFaceResponse,
)
from face_service.domain.use_cases.faces import FaceService, InputNames
from face_service.domain.use_cases.service_info import ServiceInfo

T = TypeVar("T")
AllFaces = Annotated[bool, QueryParameter(description="Addition: list every face, largest first, in `faces`")]
ONE_TO_ONE = InputNames(probe="embedding_a", single_candidate="embedding_b")
ONE_TO_MANY = InputNames(probe="embedding_a", candidates="candidates")


async def run_inference(executor: Executor, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, work)


class FaceWork:
    """What a face route needs: the admission queue, and the use cases run on the inference executor."""

    def __init__(self, service: FaceService, executor: Callable[[], Executor], admission: AdmissionQueue) -> None:
        self._service = service
        self._executor = executor
        self.admission = admission

    async def run(self, work: Callable[[FaceService], T]) -> T:
        return await run_inference(self._executor(), partial(work, self._service))


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


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get(operation_id="health", summary="Liveness and readiness")
    async def health(self, info: NamedDependency[ServiceInfo]) -> HealthResponse:
        """Unauthenticated. Reports the model and execution providers in use; models are loaded and
        warmed up before the server accepts connections, so a response means ready."""
        return presenters.health(info)


class FaceController(Controller):
    path = "/"
    tags = ("faces",)

    @face_route("/verify-face", "verifyFace", "Is there a face, and where", IMAGE_BODY)
    async def verify_face(
        self,
        request: AnyRequest,
        faces: NamedDependency[FaceWork],
        all_faces: AllFaces = False,
    ) -> VerifyFaceResponse:
        """Detect faces without computing embeddings. The top-level fields describe the largest face."""
        with faces.admission.slot():
            data = await inputs.read_image(request)
            detection = await faces.run(lambda service: service.detect(data))
        request.state.faces = len(detection.faces)
        return presenters.detection(detection, all_faces)

    @face_route("/extract-embedding", "extractEmbedding", "Embed the face in an image", IMAGE_BODY)
    async def extract_embedding(
        self,
        request: AnyRequest,
        faces: NamedDependency[FaceWork],
        all_faces: AllFaces = False,
    ) -> ExtractEmbeddingResponse:
        """The 512-D, L2-normalised embedding of the largest face, and the model that made it."""
        with faces.admission.slot():
            data = await inputs.read_image(request)
            extraction = await faces.run(lambda service: service.extract(data, all_faces))
        request.state.faces = extraction.faces_count
        return presenters.extraction(extraction, all_faces)

    @face_route("/batch-extract", "batchExtract", "Embed the faces of many images", BATCH_BODY)
    async def batch_extract(
        self,
        request: AnyRequest,
        faces: NamedDependency[FaceWork],
        all_faces: AllFaces = False,
    ) -> BatchExtractResponse:
        """JSON `images` (base64) or several multipart `file` parts. One unusable image gets its own
        error in `results`; it never fails the others."""
        with faces.admission.slot():
            images = await inputs.read_images(request)
            items = await faces.run(lambda service: service.extract_batch(images, all_faces))
        request.state.faces = sum(item.extraction.faces_count for item in items if item.extraction)
        return presenters.batch(items, all_faces)

    @face_route("/compare-faces", "compareFaces", "Cosine similarity of embeddings", COMPARE_BODY)
    async def compare_faces(
        self,
        request: AnyRequest,
        faces: NamedDependency[FaceWork],
    ) -> CompareFacesResponse:
        """One to one (`embedding_a`, `embedding_b`) or one to many (`embedding_a`, `candidates`)."""
        with faces.admission.slot():
            body = await inputs.read_body(request)
            # A thousand candidates is megabytes of JSON: decode and score off the event loop.
            return await faces.run(lambda service: compare(service, body))


def compare(service: FaceService, body: bytes) -> CompareFacesResponse:
    payload = inputs.read_comparison(body)
    one_to_one = payload.candidates is None
    comparison = service.compare(
        payload.probe,
        payload.candidates if payload.candidates is not None else [payload.single_candidate],
        payload.probe_model,
        payload.candidates_model,
        one_to_one,
        ONE_TO_ONE if one_to_one else ONE_TO_MANY,
    )
    return presenters.comparison(comparison, one_to_one)
