"""The JSON of the people routes (docs/api.md, "People"): requests, responses and their presenters."""

from __future__ import annotations

from datetime import datetime

import msgspec

from adapters.wire.collections import Box, FaceQuality, box, face_quality
from domain.cluster_jobs import ClusterJob
from domain.gallery import FaceRecord, PersonInfo
from domain.use_cases.people import PersonPhoto

MAX_SPLIT_FACES = 1000  # face ids one split may name


class MergePeopleRequest(msgspec.Struct, forbid_unknown_fields=True):
    person_id: str  # the person whose faces move into the one in the path; it goes


class SplitPersonRequest(msgspec.Struct, forbid_unknown_fields=True):
    face_ids: list[str]  # the path's person's faces that leave it, together, as a new person


class NamePersonRequest(msgspec.Struct, forbid_unknown_fields=True):
    external_id: str  # the subject the person's faces join (created when new)


class NamedPersonResponse(msgspec.Struct):
    external_id: str
    labelled_faces: int  # faces that became the subject's now (one per photo; labelled ones left)
    person: PersonSummary


class NotThisPersonRequest(msgspec.Struct, forbid_unknown_fields=True):
    face_id: str  # the path's person's face that is someone else


class PersonFace(msgspec.Struct, omit_defaults=True):
    face_id: str
    photo_id: str | None  # null for a face enrolled to a subject, from no photo
    external_id: str | None  # the face's subject, null while it is nobody's
    bbox: Box | None = None
    quality: FaceQuality | None = None


class PersonSummary(msgspec.Struct):
    person_id: str
    faces: int
    created_at: datetime
    representative: PersonFace  # the face to show: the best quality, then the first stored
    kept: bool  # a merge or a split shaped it: re-clusters keep it whole and apart


class PeopleResponse(msgspec.Struct):
    people: list[PersonSummary]
    next: str | None  # the cursor for the next page (`after=`), or null on the last


class PersonResponse(msgspec.Struct):
    person_id: str
    created_at: datetime
    representative: PersonFace
    faces: list[PersonFace]
    kept: bool  # a merge or a split shaped it: re-clusters keep it whole and apart


class PersonPhotoEntry(msgspec.Struct):
    photo_id: str
    faces: list[PersonFace]  # the person's faces in it


class PersonPhotosResponse(msgspec.Struct):
    person_id: str
    photos: list[PersonPhotoEntry]


class NotThisPersonResponse(msgspec.Struct):
    face_id: str
    person: PersonSummary | None  # the person after, or null when that was its last face


class DeletedPersonResponse(msgspec.Struct):
    person_id: str
    deleted_faces: int


class ClusterJobResponse(msgspec.Struct):
    job_id: str  # 32 hex characters: tells one re-cluster from the next
    collection: str
    state: str  # "queued", "running", "done" or "failed"
    stage: str  # "queued", "reading", "neighbours", "grouping", "storing", "done" or "failed"
    progress: float  # 0..1, by stage
    started_at: datetime
    finished_at: datetime | None
    faces: int | None  # faces read; null until done
    grouped: int | None  # faces of at least medium quality, the ones grouped
    people: int | None  # people after the pass
    assigned: int | None  # faces in a person after the pass
    error: str | None  # why it failed, with its code's message


def cluster_job(job: ClusterJob) -> ClusterJobResponse:
    outcome = job.outcome
    return ClusterJobResponse(
        job_id=job.job_id,
        collection=job.collection,
        state=job.state,
        stage=job.stage,
        progress=round(job.progress, 3),
        started_at=job.started_at,
        finished_at=job.finished_at,
        faces=None if outcome is None else outcome.faces,
        grouped=None if outcome is None else outcome.grouped,
        people=None if outcome is None else outcome.people,
        assigned=None if outcome is None else outcome.assigned,
        error=job.error,
    )


def person_face(face: FaceRecord) -> PersonFace:
    return PersonFace(face.face_id, face.photo_id, face.external_id, box(face.bbox), face_quality(face.quality))


def summary(person: PersonInfo) -> PersonSummary:
    return PersonSummary(
        person.person_id, person.faces, person.created_at, person_face(person.representative), person.kept
    )


def people(page: list[PersonInfo], limit: int) -> PeopleResponse:
    next_cursor = page[-1].person_id if len(page) == limit else None
    return PeopleResponse([summary(p) for p in page], next_cursor)


def person(info: PersonInfo, faces: list[FaceRecord]) -> PersonResponse:
    return PersonResponse(
        info.person_id,
        info.created_at,
        person_face(info.representative),
        [person_face(f) for f in faces],
        info.kept,
    )


def person_photos(info: PersonInfo, photos: list[PersonPhoto]) -> PersonPhotosResponse:
    return PersonPhotosResponse(
        info.person_id, [PersonPhotoEntry(p.photo_id, [person_face(f) for f in p.faces]) for p in photos]
    )
