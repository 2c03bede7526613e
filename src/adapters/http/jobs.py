"""The work behind each face route, as a plain function of the request's bytes: parse the body, run
the use case, present and encode the answer. It runs in an inference worker (a process or a thread),
never on the event loop, so that the loop's work per request is constant whatever the body holds.

Errors come back as data (status and JSON), not as exceptions: domain errors carry constructor
arguments that do not survive pickling between processes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from adapters.http import inputs
from adapters.http.base64_images import decode_base64
from adapters.http.errors import body_for, status_for
from adapters.stage_recorder import RECORDER
from adapters.wire import presenters
from adapters.wire.schemas import GalleryRequest
from domain.errors import FaceServiceError, InvalidInput
from domain.use_cases.collections import image_digest
from domain.use_cases.faces import Extraction, FaceService, InputNames

ONE_TO_ONE = InputNames(probe="embedding_a", single_candidate="embedding_b")
ONE_TO_MANY = InputNames(probe="embedding_a", candidates="candidates")
ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Job:
    operation: str  # one of OPERATIONS
    content_type: str
    body: bytes
    all_faces: bool = False
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class GalleryInput:
    """What a collection route's body holds, parsed in the worker: the faces of an image (embedded),
    or an embedding the caller sent with its model."""

    extraction: Extraction | None = None
    source_digest: str = ""
    embedding: list[float] | None = None
    model: str | None = None
    top_k: int | None = None


@dataclass(slots=True)
class JobResult:
    status: int
    body: bytes  # JSON: the answer, or the error {"error", "code", "field"?}
    faces: int | None = None
    gallery_input: GalleryInput | None = None  # for the collection routes, instead of `body`
    stages: list[tuple[str, float]] = field(default_factory=list)
    face_counts: list[int] = field(default_factory=list)
    failure: str | None = None  # an unexpected error's traceback, for the log; the caller gets a generic 500


def _detect(service: FaceService, job: Job) -> tuple[bytes, int]:
    data = inputs.image_from(job.content_type, job.body, max_parts=16)
    detection = service.detect(data)
    return ENCODER.encode(presenters.detection(detection, job.all_faces)), len(detection.faces)


def _extract(service: FaceService, job: Job) -> tuple[bytes, int]:
    data = inputs.image_from(job.content_type, job.body, max_parts=16)
    extraction = service.extract(data, job.all_faces)
    return ENCODER.encode(presenters.extraction(extraction, job.all_faces)), extraction.faces_count


def _batch(service: FaceService, job: Job) -> tuple[bytes, int]:
    images = inputs.images_from(job.content_type, job.body, service.limits.max_batch_size)
    items = service.extract_batch(images, job.all_faces)
    faces = sum(item.extraction.faces_count for item in items if item.extraction)
    return ENCODER.encode(presenters.batch(items, job.all_faces)), faces


def _compare(service: FaceService, job: Job) -> tuple[bytes, int]:
    given = inputs.comparison_from(job.content_type, job.body)
    one_to_one = given.candidates is None
    comparison = service.compare(
        given.probe,
        given.candidates if given.candidates is not None else [given.single_candidate],
        given.probe_model,
        given.candidates_model,
        one_to_one,
        ONE_TO_ONE if one_to_one else ONE_TO_MANY,
    )
    return ENCODER.encode(presenters.comparison(comparison, one_to_one)), 0


def gallery_input(service: FaceService, job: Job) -> GalleryInput:
    """A collection route's body: multipart `file`, JSON `image_base64`, or JSON `embedding` + `model`.
    Images are embedded here: every face (`all_faces`) or the largest."""
    if inputs.media_type_of(job.content_type) != inputs.MULTIPART:
        inputs.check_media_type(job.content_type, multipart_allowed=True)
        payload = inputs.decode_json(job.body, GalleryRequest)
        if payload.embedding is not None:
            return GalleryInput(embedding=payload.embedding, model=payload.model, top_k=payload.top_k)
        if payload.image_base64 is None:
            raise InvalidInput("Send a 'file' part, 'image_base64', or 'embedding' with 'model'", code="missing_image")
        data = decode_base64(payload.image_base64, "image_base64")
        top_k = payload.top_k
    else:
        data, top_k = inputs.image_from(job.content_type, job.body, max_parts=16), None
    extraction = service.extract(data, job.all_faces)
    return GalleryInput(extraction=extraction, source_digest=image_digest(data), top_k=top_k)


OPERATIONS: dict[str, Callable[[FaceService, Job], tuple[bytes, int]]] = {
    "detect": _detect,
    "extract": _extract,
    "batch": _batch,
    "compare": _compare,
}


def perform(service: FaceService, job: Job) -> JobResult:
    """Run one job; never raises."""
    result = JobResult(status=200, body=b"")
    with RECORDER.recording(result.stages, result.face_counts):
        try:
            if job.operation == "gallery_input":
                result.gallery_input = gallery_input(service, job)
                extraction = result.gallery_input.extraction
                result.faces = extraction.faces_count if extraction else None
            else:
                result.body, result.faces = OPERATIONS[job.operation](service, job)
        except FaceServiceError as error:
            result.status, result.body = status_for(error), ENCODER.encode(body_for(error))
        except Exception:  # a bug or an environment failure: logged by the caller with the request id
            result.status, result.body = 500, b""
            result.failure = traceback.format_exc()
    return result
