"""The photo routes of a collection (docs/api.md, "Photos"): index every face of a photo, list, read
and forget photos, and find the photos a person is in. Images go to inference workers (a photo is
read from its body and hashed on a gallery thread first, to ask whether it is indexed already); the
gallery's work runs on its own threads; the loop only reads bytes and writes answers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from adapters.http.collections import Name, QualityFloor, gallery_input, gallery_post
from adapters.http.controllers import FaceWork
from adapters.http.gallery import GalleryWork
from adapters.http.inputs import AnyRequest
from adapters.http.openapi import COLLECTION_ERRORS, IMAGE_BODY, with_body
from adapters.inference.jobs import MAX_PARTS, IndexPhoto, Job
from adapters.wire import photos as wire
from adapters.wire.bodies import photo_image
from domain.quality import DEFAULT_ENROLL_QUALITY, quality_floor
from domain.use_cases.collections import Collections, checked_name, checked_photo_id, image_digest
from domain.use_cases.photos import (
    DEFAULT_PHOTO_TOP_K,
    MAX_FACES_PER_PHOTO,
    MAX_PHOTO_TOP_K,
    PhotoIndexing,
    PhotoOptions,
    PhotoSearchResult,
)

PhotoId = Annotated[
    str, PathParameter(description="The caller's id for the photo: 1 to 128 letters, digits or . _ : @ + = -")
]


class PhotoController(Controller):
    path = "/collections"
    tags = ("photos",)

    @post(
        "/{name:str}/photos/{photo_id:str}",
        operation_id="indexPhoto",
        summary="Index every face of a photo",
        status_code=201,
        operation_class=with_body(IMAGE_BODY),
        responses={
            **COLLECTION_ERRORS,
            200: ResponseSpec(
                data_container=wire.IndexPhotoResponse,
                description="This photo id was indexed from the same bytes before: that photo, `duplicate: true`",
                generate_examples=False,
            ),
        },
    )
    async def index(
        self,
        request: AnyRequest,
        name: Name,
        photo_id: PhotoId,
        faces: NamedDependency[FaceWork],
        gallery: NamedDependency[GalleryWork],
        quality: Annotated[
            QualityFloor,
            QueryParameter(description="Index only faces of at least this quality; the others are `unindexed`"),
        ] = DEFAULT_ENROLL_QUALITY.value,  # type: ignore[assignment]
        max_faces: Annotated[
            int, QueryParameter(ge=1, le=MAX_FACES_PER_PHOTO, description="the largest faces are indexed")
        ] = MAX_FACES_PER_PHOTO,
        min_face_size: Annotated[
            int, QueryParameter(ge=0, le=10_000, description="pixels, the face box's shorter side")
        ] = 0,
    ) -> Response[wire.IndexPhotoResponse]:
        """An image (multipart `file` or `image_base64`): every face detected is assessed; those of at
        least `quality` and `min_face_size`, the `max_faces` largest, are embedded and stored
        unlabelled under the photo id, the others answered in `unindexed` with their reasons. The same
        photo id with the same bytes answers the stored photo (`duplicate: true`, 200) without running
        a model; with other bytes, 409 `photo_exists`. A photo without a face is stored too."""
        checked_name(name)
        checked_photo_id(photo_id)
        options = PhotoOptions(quality_floor(quality), max_faces, min_face_size)

        async with faces.held_body(request) as held:

            def look_up(c: Collections) -> tuple[bytes, str, PhotoIndexing | None]:
                # The image read from the body and hashed here, on the gallery's thread with the
                # look-up (hashlib lets go of the GIL): one hop, and the worker gets only the image.
                image = photo_image(held.content_type, held.body, MAX_PARTS)
                digest = image_digest(image)
                return image, digest, c.photos.already_indexed(name, photo_id, digest)

            image, digest, known = await gallery.run(look_up)
            if known is None:  # only now do the models run

                def index_job(_content_type: str, _body: bytes, request_id: str) -> Job:
                    return IndexPhoto("image", image, False, request_id, options, digest)

                found = (await held.run(index_job)).photo
                assert found is not None

                def index(c: Collections) -> PhotoIndexing:
                    return c.photos.index(name, photo_id, found, options)

                known = await gallery.run(index)
        return Response(wire.indexed_photo(known), status_code=200 if known.duplicate else 201)

    @get(
        "/{name:str}/photos",
        operation_id="listPhotos",
        summary="Photos, a page at a time",
        responses=COLLECTION_ERRORS,
    )
    async def list_photos(
        self,
        name: Name,
        gallery: NamedDependency[GalleryWork],
        after: Annotated[str | None, QueryParameter(description="the `next` cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> wire.PhotosResponse:
        """Ordered by photo id, with each photo's face count; pass `next` as `after` for the next page
        (null on the last)."""
        return wire.photos(await gallery.run(lambda c: c.photos.page(name, after, limit)), limit)

    @get(
        "/{name:str}/photos/{photo_id:str}",
        operation_id="getPhoto",
        summary="A photo and its faces",
        responses=COLLECTION_ERRORS,
    )
    async def get_photo(
        self, name: Name, photo_id: PhotoId, gallery: NamedDependency[GalleryWork]
    ) -> wire.PhotoResponse:
        """Its faces in the order they were indexed, each with its box, landmarks, confidence, quality and
        subject (`external_id`, null while it is nobody's). 404 `photo_not_found`."""
        info, stored = await gallery.run(lambda c: c.photos.get(name, photo_id))
        return wire.photo(info, stored)

    @delete(
        "/{name:str}/photos/{photo_id:str}",
        operation_id="deletePhoto",
        summary="Forget a photo and every face of it",
        status_code=200,
        responses=COLLECTION_ERRORS,
    )
    async def delete_photo(
        self, name: Name, photo_id: PhotoId, gallery: NamedDependency[GalleryWork]
    ) -> wire.DeletedPhotoResponse:
        """Every face of the photo (a labelled one too; a subject left without faces goes) is removed
        from the store and the index, durably, before the answer."""
        removed = await gallery.run(lambda c: c.photos.delete(name, photo_id))
        gallery.metrics.gallery_deletions.labels(store=gallery.store(), kind="photo").inc()
        return wire.DeletedPhotoResponse(photo_id, removed)

    @gallery_post("/{name:str}/search/photos", "searchPhotos", "Which photos is this person in", 200)
    async def search(
        self,
        request: AnyRequest,
        name: Name,
        faces: NamedDependency[FaceWork],
        gallery: NamedDependency[GalleryWork],
        face: Annotated[
            int | None,
            QueryParameter(
                ge=0,
                le=1000,
                description="the image's n-th face (0-based, as /extract-embedding?all_faces=true "
                "lists them); default: its largest",
            ),
        ] = None,
        top_k: Annotated[int, QueryParameter(ge=1, le=MAX_PHOTO_TOP_K, description="photos per page")] = (
            DEFAULT_PHOTO_TOP_K
        ),
        min_similarity: Annotated[
            float | None, QueryParameter(ge=-1, le=1, description="default: the collection's threshold")
        ] = None,
        after: Annotated[str | None, QueryParameter(description="the `next` cursor of the previous page")] = None,
        min_quality: Annotated[
            QualityFloor,
            QueryParameter(description="refuse a probe face below this quality (422 `low_quality_face`)"),
        ] = "none",
    ) -> wire.PhotoSearchResponse:
        """By image (its largest face, or `face`) or `{embedding, model}`: the photos holding a face at
        least `min_similarity` alike, each once with its most similar face, ranked by similarity then
        photo id; `count` of them on every page, `next` for the next page, `match` against the
        collection's threshold."""
        cursor = wire.decode_cursor(after)
        floor = quality_floor(min_quality)
        given = await gallery_input(request, faces, all_faces=face is not None)

        def search(c: Collections) -> PhotoSearchResult:
            if given.extraction is not None:
                return c.photos.search_extraction(name, given.extraction, face, top_k, min_similarity, cursor, floor)
            return c.photos.search_embedding(
                name, given.embedding or [], given.model or "", top_k, min_similarity, cursor
            )

        result: Any = await gallery.run(search)
        return wire.photo_search(result)
