"""The collection routes. A body that holds an image goes to an inference worker (parsed and embedded
there); the gallery's work runs on its own threads (`adapters/http/gallery.py`), off the event loop;
the loop only reads bytes and writes answers."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from adapters.http.auth import caller_scope
from adapters.http.controllers import FaceWork
from adapters.http.gallery import GalleryWork
from adapters.http.inputs import AnyRequest
from adapters.http.openapi import COLLECTION_ERRORS, GALLERY_BODY, IMPORT_BODY, IMPORT_ERRORS, json_body, with_body
from adapters.inference.jobs import EmbedForGallery, JobResult
from adapters.wire import collections as wire
from adapters.wire.bodies import GalleryInput, gallery_embedding
from adapters.wire.collection_export import export_chunks
from domain.access import Verb
from domain.quality import DEFAULT_ENROLL_QUALITY, quality_floor
from domain.use_cases.collections import Collections, Enrollment, EnrollOptions

T = TypeVar("T")
SMALL_BODY = 64 * 1024  # names and thresholds: no reason to read more on the event loop
NDJSON = "application/x-ndjson"


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


QualityFloor = Literal["none", "low", "medium", "high"]  # domain.quality.FLOOR_NAMES (tests/unit/test_quality.py)


def enroll_options(face: str, min_face_size: int, min_confidence: float, quality: str) -> EnrollOptions:
    return EnrollOptions(
        largest=face == "largest",
        min_face_size=min_face_size,
        min_confidence=min_confidence,
        min_quality=quality_floor(quality),
    )


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
        dependencies=json_body(wire.CreateCollectionRequest),
        responses=COLLECTION_ERRORS,
    )
    async def create(self, request: AnyRequest, gallery: NamedDependency[GalleryWork]) -> wire.CollectionResponse:
        """A named gallery pinned to the service's embedding model (its `model` id and dimension)."""
        data = await gallery.json_body(request, wire.CreateCollectionRequest)
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
        quality: Annotated[
            QualityFloor,
            QueryParameter(
                description="Refuse an image's face below this quality level (422 `low_quality_face` with its "
                "`reasons`); `none`: no floor. An embedding has no quality: the caller vouches for it"
            ),
        ] = DEFAULT_ENROLL_QUALITY.value,  # type: ignore[assignment]
    ) -> Response[wire.EnrollResponse]:
        """From an image (multipart `file` or `image_base64`: exactly one face unless `face=largest`, of
        at least `quality`) or from `{embedding, model}`. The same image again for the same subject
        returns the face already enrolled (`duplicate: true`, 200), never a copy. Creates the subject on
        its first face."""
        given = await gallery_input(request, faces, all_faces=False)
        options = enroll_options(face, min_face_size, min_confidence, quality)

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
        min_quality: Annotated[
            QualityFloor,
            QueryParameter(
                description="Search only the image's faces of at least this quality; the others are listed in "
                "`skipped` with their quality. `none`: every face"
            ),
        ] = "none",
    ) -> wire.SearchResponse:
        """By image (every face, or the largest with `faces=largest`) or by `{embedding, model}`: for
        each query face the `top_k` best subjects with their best face, and the match decision against
        the collection's threshold. Each image face is reported with its quality."""
        given = await gallery_input(request, faces, all_faces=which == "all")
        k = top_k if top_k is not None else given.top_k
        floor = quality_floor(min_quality)

        def search(c: Collections) -> Any:
            if given.extraction is not None:
                return c.search_extraction(name, given.extraction, k, floor)
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
