"""The people routes of a collection (docs/api.md, "People"): list people and a person's faces and
photos, correct them (merge, split, not this person), forget one with its faces, and re-cluster the collection in the
background with a status to poll. The gallery's work runs on its threads; a re-cluster on its own."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from adapters.http.collections import SMALL_BODY, Name
from adapters.http.gallery import GalleryWork
from adapters.http.inputs import AnyRequest
from adapters.http.openapi import COLLECTION_ERRORS, json_body
from adapters.wire import people as wire
from domain.errors import InvalidInput

PersonId = Annotated[str, PathParameter(description="The person's id: 32 lowercase hex characters")]


class PeopleController(Controller):
    path = "/collections"
    tags = ("people",)

    @get(
        "/{name:str}/people", operation_id="listPeople", summary="People, a page at a time", responses=COLLECTION_ERRORS
    )
    async def list_people(
        self,
        name: Name,
        gallery: NamedDependency[GalleryWork],
        after: Annotated[str | None, QueryParameter(description="the `next` cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> wire.PeopleResponse:
        """The collection's faces grouped into people (by a re-cluster, and as photos are indexed),
        ordered by person id, each with its face count and a representative face (its photo id and
        box) to show; pass `next` as `after` for the next page (null on the last)."""
        return wire.people(await gallery.run(lambda c: c.people.page(name, after, limit)), limit)

    @get(
        "/{name:str}/people/{person_id:str}",
        operation_id="getPerson",
        summary="A person and its faces",
        responses=COLLECTION_ERRORS,
    )
    async def get_person(
        self, name: Name, person_id: PersonId, gallery: NamedDependency[GalleryWork]
    ) -> wire.PersonResponse:
        """Its faces in the order they were stored, each with its photo, box and subject. 404
        `person_not_found`."""
        return wire.person(*await gallery.run(lambda c: c.people.get(name, person_id)))

    @get(
        "/{name:str}/people/{person_id:str}/photos",
        operation_id="listPersonPhotos",
        summary="The photos a person is in",
        responses=COLLECTION_ERRORS,
    )
    async def person_photos(
        self, name: Name, person_id: PersonId, gallery: NamedDependency[GalleryWork]
    ) -> wire.PersonPhotosResponse:
        """Every photo holding a face of the person, by photo id, with the person's face there."""
        return wire.person_photos(*await gallery.run(lambda c: c.people.photos(name, person_id)))

    @post(
        "/{name:str}/people/{person_id:str}/name",
        operation_id="namePerson",
        summary="Name a person: its faces join a subject",
        status_code=200,
        request_max_body_size=SMALL_BODY,
        dependencies=json_body(wire.NamePersonRequest),
        responses=COLLECTION_ERRORS,
    )
    async def name_person(
        self,
        name: Name,
        person_id: PersonId,
        request: AnyRequest,
        gallery: NamedDependency[GalleryWork],
    ) -> wire.NamedPersonResponse:
        """The person's unlabelled faces become the subject `external_id`'s (created when new), so
        subject search and verify find the person from then on; they stay their photos' faces. One
        face per photo (one per source, as enrolment); faces of another subject are left as they are.
        The subject's limits hold (409 `subject_limit`, `subject_face_limit`; nothing changes)."""
        data = await gallery.json_body(request, wire.NamePersonRequest)
        person, labelled = await gallery.run(lambda c: c.people.name(name, person_id, data.external_id))
        return wire.NamedPersonResponse(data.external_id, labelled, wire.summary(person))

    @post(
        "/{name:str}/people/{person_id:str}/merge",
        operation_id="mergePeople",
        summary="Merge another person into this one",
        status_code=200,
        request_max_body_size=SMALL_BODY,
        dependencies=json_body(wire.MergePeopleRequest),
        responses=COLLECTION_ERRORS,
    )
    async def merge(
        self,
        name: Name,
        person_id: PersonId,
        request: AnyRequest,
        gallery: NamedDependency[GalleryWork],
    ) -> wire.PersonSummary:
        """Every face of `person_id` (the body's) joins the path's person; the body's person goes. 409
        `people_named_differently` (nothing changes) when the two hold faces of different subjects; an
        unnamed person's faces merged into a named one stay unlabelled until it is named again."""
        data = await gallery.json_body(request, wire.MergePeopleRequest)
        return wire.summary(await gallery.run(lambda c: c.people.merge(name, person_id, data.person_id)))

    @post(
        "/{name:str}/people/{person_id:str}/split",
        operation_id="splitPerson",
        summary="Split faces out of a person into a new one",
        status_code=201,
        request_max_body_size=SMALL_BODY,
        dependencies=json_body(wire.SplitPersonRequest),
        responses=COLLECTION_ERRORS,
    )
    async def split(
        self,
        name: Name,
        person_id: PersonId,
        request: AnyRequest,
        gallery: NamedDependency[GalleryWork],
    ) -> wire.PersonSummary:
        """The faces named (the person's, not all of them) leave it together as a new person, the one
        answered. 404 `face_not_found` when one is not the person's (nothing changes)."""
        data = await gallery.json_body(request, wire.SplitPersonRequest)
        if not 1 <= len(data.face_ids) <= wire.MAX_SPLIT_FACES:
            raise InvalidInput(f"name 1 to {wire.MAX_SPLIT_FACES} face ids", field="face_ids")
        return wire.summary(await gallery.run(lambda c: c.people.split(name, person_id, data.face_ids)))

    @post(
        "/{name:str}/people/{person_id:str}/not-this-person",
        operation_id="notThisPerson",
        summary="A face is not this person",
        status_code=200,
        request_max_body_size=SMALL_BODY,
        dependencies=json_body(wire.NotThisPersonRequest),
        responses=COLLECTION_ERRORS,
    )
    async def not_this_person(
        self,
        name: Name,
        person_id: PersonId,
        request: AnyRequest,
        gallery: NamedDependency[GalleryWork],
    ) -> wire.NotThisPersonResponse:
        """The face leaves the person and is kept apart from each of its other faces from now on, by
        later re-clusters too; `person` is the person after, null when that was its last face. A photo
        face that naming labelled loses its label (out of the subject, its search and verify; a subject
        left with no face goes). 409 `face_enrolled_to_subject` (nothing changes) for a face enrolled
        to a subject, not from a photo: delete it from the subject instead."""
        data = await gallery.json_body(request, wire.NotThisPersonRequest)
        left = await gallery.run(lambda c: c.people.refuse(name, person_id, data.face_id))
        return wire.NotThisPersonResponse(data.face_id, None if left is None else wire.summary(left))

    @delete(
        "/{name:str}/people/{person_id:str}",
        operation_id="deletePerson",
        summary="Forget a person and every face of it",
        status_code=200,
        responses=COLLECTION_ERRORS,
    )
    async def delete_person(
        self, name: Name, person_id: PersonId, gallery: NamedDependency[GalleryWork]
    ) -> wire.DeletedPersonResponse:
        """Every face of the person is removed from the store, subject and photo search, export and
        the corrections, durably, before the answer; a subject left without faces goes. Its photos stay
        with their other faces: indexing one again from the same bytes answers it as stored
        (`duplicate: true`) without the forgotten faces; delete the photo to index it anew. 404
        `person_not_found`."""
        removed = await gallery.run(lambda c: c.people.delete(name, person_id))
        gallery.metrics.gallery_deletions.labels(store=gallery.store(), kind="person").inc()
        return wire.DeletedPersonResponse(person_id, removed)

    @post(
        "/{name:str}/clustering",
        operation_id="startClustering",
        summary="Re-cluster the collection's faces into people, in the background",
        status_code=202,
        responses=COLLECTION_ERRORS,
    )
    async def start_clustering(
        self, name: Name, gallery: NamedDependency[GalleryWork]
    ) -> Response[wire.ClusterJobResponse]:
        """Groups every face of at least medium quality into people from scratch, keeping the
        corrections (not-this-person) and each subject's faces together; a person keeps its id when
        most of its faces stay together. 202 with the job; while one is queued or running for the
        collection, on any replica, 200 with that one. Poll `GET /collections/{name}/clustering` for
        its progress."""
        job, started = await gallery.run(lambda c: gallery.clustering.start(c.get(name).name))
        return Response(wire.cluster_job(job), status_code=202 if started else 200)

    @get(
        "/{name:str}/clustering",
        operation_id="getClustering",
        summary="The re-cluster's progress",
        responses=COLLECTION_ERRORS,
    )
    async def get_clustering(self, name: Name, gallery: NamedDependency[GalleryWork]) -> wire.ClusterJobResponse:
        """The collection's last re-cluster, started on any replica: its state, stage and progress
        (0..1), and when done how many faces it read and grouped, and the people it made. One whose
        replica stopped before it finished (no heartbeat for 15 s) is failed, `interrupted`. 404
        `clustering_not_started`."""
        return wire.cluster_job(await gallery.run(lambda c: c.cluster_jobs.status(c.get(name).name)))
