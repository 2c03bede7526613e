"""The work an inference worker does for a request, one class per kind: parse the body, run the use
case, present and encode the answer. Jobs run in a worker (a process or a thread), never on the event
loop, so that the loop's work per request is constant whatever the body holds.

Errors come back as data (status and JSON, rendered by the contract's error map), not as exceptions:
domain errors carry constructor arguments that do not survive pickling between processes.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec

from adapters.inference.stage_recorder import RECORDER
from adapters.wire import bodies, presenters
from adapters.wire.base64_images import decode_base64
from adapters.wire.bodies import GalleryInput
from adapters.wire.errors import body_for, status_for
from adapters.wire.schemas import GalleryRequest
from domain.errors import FaceServiceError, InvalidInput
from domain.use_cases.collections import image_digest
from domain.use_cases.faces import FaceService, InputNames
from domain.use_cases.photos import PhotoFaces, PhotoOptions, chosen_faces

ONE_TO_ONE = InputNames(probe="embedding_a", single_candidate="embedding_b")
ONE_TO_MANY = InputNames(probe="embedding_a", candidates="candidates")
ENCODER = msgspec.json.Encoder()
MAX_PARTS = 16  # multipart parts read from a one-image request
DEFAULT_PHOTO_OPTIONS = PhotoOptions()


@dataclass(slots=True)
class JobResult:
    status: int
    body: bytes = b""  # JSON: the answer, or the error {"error", "code", "field"?}
    faces: int | None = None
    gallery_input: GalleryInput | None = None  # for the collection routes, instead of `body`
    photo: PhotoFaces | None = None  # for indexing a photo, instead of `body`
    stages: list[tuple[str, float]] = field(default_factory=list)
    face_counts: list[int] = field(default_factory=list)
    failure: str | None = None  # an unexpected error's traceback, for the log; the caller gets a generic 500


@dataclass(frozen=True, slots=True)
class Job:
    """A request's body for an inference worker; the subclass says what to do with it."""

    content_type: str
    body: bytes
    all_faces: bool = False
    request_id: str = ""
    multipart_allowed: ClassVar[bool] = True  # which bodies the route takes (checked before reading)

    def run(self, service: FaceService) -> JobResult:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Detect(Job):
    """/verify-face: where the faces are, without embeddings."""

    def run(self, service: FaceService) -> JobResult:
        detection = service.detect(bodies.image_from(self.content_type, self.body, MAX_PARTS), self.all_faces)
        answer = presenters.detection(detection, self.all_faces)
        return JobResult(200, ENCODER.encode(answer), faces=len(detection.faces))


@dataclass(frozen=True, slots=True)
class Extract(Job):
    """/extract-embedding: the largest face's embedding (or every face's)."""

    def run(self, service: FaceService) -> JobResult:
        extraction = service.extract(bodies.image_from(self.content_type, self.body, MAX_PARTS), self.all_faces)
        answer = presenters.extraction(extraction, self.all_faces)
        return JobResult(200, ENCODER.encode(answer), faces=extraction.faces_count)


@dataclass(frozen=True, slots=True)
class ExtractBatch(Job):
    """/batch-extract: many images; one bad image is its own item's error."""

    def run(self, service: FaceService) -> JobResult:
        images = bodies.images_from(self.content_type, self.body, service.limits.max_batch_size)
        items = service.extract_batch(images, self.all_faces)
        faces = sum(item.extraction.faces_count for item in items if item.extraction)
        return JobResult(200, ENCODER.encode(presenters.batch(items, self.all_faces)), faces=faces)


@dataclass(frozen=True, slots=True)
class Compare(Job):
    """/compare-faces: embeddings only (a large one-to-many body is still parsed here, off the loop)."""

    multipart_allowed: ClassVar[bool] = False

    def run(self, service: FaceService) -> JobResult:
        given = bodies.comparison_from(self.content_type, self.body)
        one_to_one = given.candidates is None
        comparison = service.compare(
            given.probe,
            given.candidates if given.candidates is not None else [given.single_candidate],
            given.probe_model,
            given.candidates_model,
            one_to_one,
            ONE_TO_ONE if one_to_one else ONE_TO_MANY,
        )
        return JobResult(200, ENCODER.encode(presenters.comparison(comparison, one_to_one)), faces=0)


@dataclass(frozen=True, slots=True)
class EmbedForGallery(Job):
    """A collection route's image (multipart `file` or JSON `image_base64`), embedded: every face
    (`all_faces`) or the largest. A body holding an embedding instead is answered as it is (the
    HTTP adapter sends only bodies too large to parse on the loop here)."""

    def run(self, service: FaceService) -> JobResult:
        if bodies.media_type_of(self.content_type) == bodies.MULTIPART:
            data, top_k = bodies.image_from(self.content_type, self.body, MAX_PARTS), None
        else:
            bodies.check_media_type(self.content_type, multipart_allowed=True)
            payload = bodies.decode_json(self.body, GalleryRequest)
            if (embedding := bodies.embedding_input(payload)) is not None:
                return JobResult(200, gallery_input=embedding)
            if payload.image_base64 is None:
                raise InvalidInput(
                    "Send a 'file' part, 'image_base64', or 'embedding' with 'model'", code="missing_image"
                )
            data, top_k = decode_base64(payload.image_base64, "image_base64"), payload.top_k
        extraction = service.extract(data, self.all_faces)
        given = GalleryInput(extraction=extraction, source_digest=image_digest(data), top_k=top_k)
        return JobResult(200, faces=extraction.faces_count, gallery_input=given)


@dataclass(frozen=True, slots=True)
class IndexPhoto(Job):
    """A photo's faces for indexing: every face detected and assessed, only those `options` index
    embedded (domain.use_cases.photos.photo_plan). Its body is the image itself (`bodies.photo_image`),
    `digest` its SHA-256."""

    options: PhotoOptions = DEFAULT_PHOTO_OPTIONS
    digest: str = ""

    def run(self, service: FaceService) -> JobResult:
        found, extraction = service.extract_chosen(self.body, chosen_faces(self.options))
        digest = self.digest or image_digest(self.body)
        return JobResult(200, faces=len(found), photo=PhotoFaces(digest, found, extraction))


def perform(service: FaceService, job: Job) -> JobResult:
    """Run one job; never raises."""
    stages: list[tuple[str, float]] = []
    face_counts: list[int] = []
    with RECORDER.recording(stages, face_counts):
        try:
            result = job.run(service)
        except FaceServiceError as error:
            result = JobResult(status_for(error), ENCODER.encode(body_for(error)))
        except Exception:  # a bug or an environment failure: logged by the caller with the request id
            result = JobResult(500, failure=traceback.format_exc())
    result.stages, result.face_counts = stages, face_counts
    return result
