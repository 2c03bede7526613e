"""The routes. Each handler reads its input, runs one use case on the inference executor, and
maps the result to the contract's JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import RequestBody
from litestar.params import QueryParameter

from adapters.http import inputs
from adapters.http.admission import AdmissionQueue
from adapters.http.openapi import BATCH_BODY, COMPARE_BODY, ERROR_RESPONSES, IMAGE_BODY, with_body
from adapters.http.schemas import (
    BatchExtractResponse,
    BatchResult,
    CandidateResult,
    CompareFacesResponse,
    CompareRequest,
    ExtractEmbeddingResponse,
    Face,
    HealthResponse,
    VerifyFaceResponse,
)
from app.use_cases import Detection, Extraction, FaceService, ServiceInfo
from domain.errors import InvalidEmbedding, InvalidInput
from domain.model import DetectedFace, EmbeddedFace

T = TypeVar("T")
NO_FACE = "No face detected in image"
EMBEDDING_FIELDS = ("embedding_a", "embedding_b", "candidates")
AnyRequest = Request[Any, Any, Any]
AllFaces = Annotated[bool, QueryParameter(description="Addition: list every face, largest first, in `faces`")]


async def run_inference(executor: Executor, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, work)


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


def box(face: DetectedFace) -> list[int]:
    b = face.box
    return [round(b.x1), round(b.y1), round(b.x2), round(b.y2)]


def confidence(face: DetectedFace) -> float:
    return round(face.confidence, 4)


def face_out(face: DetectedFace, embedded: EmbeddedFace | None = None) -> Face:
    return Face(
        bbox=box(face),
        confidence=confidence(face),
        landmarks=[[round(x, 1), round(y, 1)] for x, y in face.landmarks],
        embedding=embedded.embedding.tolist() if embedded is not None else None,
    )


def extraction_fields(extraction: Extraction, all_faces: bool) -> dict[str, object]:
    if not extraction.faces:
        return {"face_detected": False, "faces_count": 0, "error": NO_FACE, "faces": [] if all_faces else None}
    primary = extraction.faces[0]
    return {
        "face_detected": True,
        "faces_count": extraction.faces_count,
        "embedding": primary.embedding.tolist(),
        "bbox": box(primary.face),
        "confidence": confidence(primary.face),
        "model": primary.model.id,
        "faces": [face_out(f.face, f) for f in extraction.faces] if all_faces else None,
    }


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get(operation_id="health", summary="Liveness and readiness")
    async def health(self, info: NamedDependency[ServiceInfo]) -> HealthResponse:
        """Unauthenticated. Reports the model and execution providers in use; models are loaded and
        warmed up before the server accepts connections, so a response means ready."""
        return HealthResponse(
            status="healthy",
            model="insightface" if info.backend == "insightface" else info.backend,
            version=info.version,
            backend=info.backend,
            model_pack=info.model_pack,
            model_id=info.model_id,
            embedding_size=info.embedding_size,
            execution_providers=info.execution_providers,
            requested_execution_providers=info.requested_execution_providers,
        )


class FaceController(Controller):
    path = "/"
    tags = ("faces",)

    @face_route("/verify-face", "verifyFace", "Is there a face, and where", IMAGE_BODY)
    async def verify_face(
        self,
        request: AnyRequest,
        service: NamedDependency[FaceService],
        executor: NamedDependency[Executor],
        admission: NamedDependency[AdmissionQueue],
        all_faces: AllFaces = False,
    ) -> VerifyFaceResponse:
        """Detect faces without computing embeddings. The top-level fields describe the largest face."""
        with admission.slot():
            data = await inputs.read_image(request)
            detection: Detection = await run_inference(executor, partial(service.detect, data))
        request.state.faces = len(detection.faces)
        faces = [face_out(face) for face in detection.faces] if all_faces else None
        if not detection.faces:
            return VerifyFaceResponse(face_detected=False, faces_count=0, error=NO_FACE, faces=faces)
        primary = detection.faces[0]
        return VerifyFaceResponse(
            face_detected=True,
            faces_count=len(detection.faces),
            confidence=confidence(primary),
            bbox=box(primary),
            message="Face detected successfully",
            faces=faces,
        )

    @face_route("/extract-embedding", "extractEmbedding", "Embed the face in an image", IMAGE_BODY)
    async def extract_embedding(
        self,
        request: AnyRequest,
        service: NamedDependency[FaceService],
        executor: NamedDependency[Executor],
        admission: NamedDependency[AdmissionQueue],
        all_faces: AllFaces = False,
    ) -> ExtractEmbeddingResponse:
        """The 512-D, L2-normalised embedding of the largest face, and the model that made it."""
        with admission.slot():
            data = await inputs.read_image(request)
            extraction = await run_inference(executor, partial(service.extract, data, all_faces))
        request.state.faces = extraction.faces_count
        return ExtractEmbeddingResponse(**extraction_fields(extraction, all_faces))  # type: ignore[arg-type]

    @face_route("/batch-extract", "batchExtract", "Embed the faces of many images", BATCH_BODY)
    async def batch_extract(
        self,
        request: AnyRequest,
        service: NamedDependency[FaceService],
        executor: NamedDependency[Executor],
        admission: NamedDependency[AdmissionQueue],
        all_faces: AllFaces = False,
    ) -> BatchExtractResponse:
        """JSON `images` (base64) or several multipart `file` parts. One unusable image gets its own
        error in `results`; it never fails the others."""
        with admission.slot():
            images = await inputs.read_images(request)
            items = await run_inference(executor, partial(service.extract_batch, images, all_faces))
        request.state.faces = sum(item.extraction.faces_count for item in items if item.extraction)
        results = []
        for item in items:
            if item.error is not None:
                results.append(
                    BatchResult(index=item.index, face_detected=False, error=item.error.message, code=item.error.code)
                )
                continue
            assert item.extraction is not None
            fields = extraction_fields(item.extraction, all_faces)
            if not item.extraction.faces:
                fields["code"] = "no_face"
            results.append(BatchResult(index=item.index, **fields))  # type: ignore[arg-type]
        successful = sum(1 for result in results if result.face_detected)
        return BatchExtractResponse(
            results=results, total=len(results), successful=successful, failed=len(results) - successful
        )

    @face_route("/compare-faces", "compareFaces", "Cosine similarity of embeddings", COMPARE_BODY)
    async def compare_faces(
        self,
        request: AnyRequest,
        service: NamedDependency[FaceService],
        executor: NamedDependency[Executor],
        admission: NamedDependency[AdmissionQueue],
    ) -> CompareFacesResponse:
        """One to one (`embedding_a`, `embedding_b`) or one to many (`embedding_a`, `candidates`)."""
        with admission.slot():
            body = await inputs.read_body(request)
            # A thousand candidates is megabytes of JSON: decode and score off the event loop.
            return await run_inference(executor, partial(compare, service, body))


def compare(service: FaceService, body: bytes) -> CompareFacesResponse:
    try:
        payload = inputs.decode_json(body, CompareRequest)
    except InvalidInput as error:
        # A value in an embedding that is no finite number ("nan", 1e999) is an unusable embedding.
        if error.field and error.field.split("[")[0] in EMBEDDING_FIELDS:
            raise InvalidEmbedding(error.message, error.field) from None
        raise
    if (payload.embedding_b is None) == (payload.candidates is None):
        raise InvalidInput("Send embedding_a with either embedding_b or candidates", code="invalid_request")
    one_to_one = payload.candidates is None
    candidates = [payload.embedding_b or []] if one_to_one else payload.candidates or []
    comparison = service.compare(payload.embedding_a, candidates, payload.model_a, payload.model_b, one_to_one)
    best = comparison.best
    results = None
    if not one_to_one:
        results = [
            CandidateResult(
                index=s.index, similarity=round(s.similarity, 6), distance=round(s.distance, 6), match=s.match
            )
            for s in comparison.scores
        ]
    return CompareFacesResponse(
        similarity=round(best.similarity, 6),
        distance=round(best.distance, 6),
        match=best.match,
        threshold=comparison.threshold,
        model=comparison.model,
        best_index=best.index if results is not None else None,
        results=results,
    )
