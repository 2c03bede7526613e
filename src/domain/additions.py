"""The rule for adding faces to a collection, decided in one place for every store.

A store reads what the rule needs inside its own transaction (the collection's counts, the faces the
batch's subjects already hold, the faces already enrolled from the same sources), asks
`plan_additions`, and writes what it answers, or nothing when it raises. So SQLite, PostgreSQL and
memory keep the same promises: one face per source image per subject (a repeat answers the face
already stored, `duplicate`), a subject is created by its first face, and a batch that would pass a
limit is refused whole, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from domain.errors import GalleryLimitExceeded
from domain.gallery import FaceRecord, GalleryLimits


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the store holds, as far as a batch of additions is concerned."""

    subjects: int  # subjects in the collection
    faces: int  # faces in the collection
    subject_faces: Mapping[str, int]  # faces of each of the batch's subjects that exist already
    by_source: Mapping[tuple[str, str], FaceRecord]  # (external id, source digest) -> face already stored


@dataclass(slots=True)
class Additions:
    """What to write, and what to answer for each face asked for (in the order asked)."""

    results: list[tuple[FaceRecord, bool]] = field(default_factory=list)  # (face, duplicate)
    new_faces: list[FaceRecord] = field(default_factory=list)  # to store, in order
    new_subjects: list[FaceRecord] = field(default_factory=list)  # the first face of each subject to create


def plan_additions(
    collection: str, faces: Sequence[FaceRecord], limits: GalleryLimits, state: StoredState
) -> Additions:
    """Decide every face of the batch; raises GalleryLimitExceeded (and nothing is to be written)
    when one of them would pass a limit."""
    plan = Additions()
    planned: dict[tuple[str, str], FaceRecord] = {}
    added_per_subject: dict[str, int] = {}
    subjects = state.subjects
    for face in faces:
        key = (face.external_id, face.source_digest)
        existing = state.by_source.get(key) or planned.get(key)
        if existing is not None:
            plan.results.append((existing, True))
            continue
        is_new_subject = face.external_id not in state.subject_faces and face.external_id not in added_per_subject
        subject_faces = state.subject_faces.get(face.external_id, 0) + added_per_subject.get(face.external_id, 0)
        check_limits(
            limits,
            collection,
            new_subject=is_new_subject,
            subjects=subjects,
            subject_faces=subject_faces,
            collection_faces=state.faces + len(plan.new_faces),
        )
        if is_new_subject:
            subjects += 1
            plan.new_subjects.append(face)
        added_per_subject[face.external_id] = added_per_subject.get(face.external_id, 0) + 1
        planned[key] = face
        plan.new_faces.append(face)
        plan.results.append((face, False))
    return plan


def check_limits(
    limits: GalleryLimits,
    collection: str,
    *,
    new_subject: bool,
    subjects: int,
    subject_faces: int,
    collection_faces: int,
) -> None:
    """Raise GalleryLimitExceeded if one more face (of a new subject, or of one with `subject_faces`)
    is too many."""
    if new_subject and subjects >= limits.max_subjects_per_collection:
        raise GalleryLimitExceeded(
            f"collection {collection!r} holds {subjects} subjects, the most allowed", "subject_limit"
        )
    if subject_faces >= limits.max_faces_per_subject:
        raise GalleryLimitExceeded(
            f"the subject has {subject_faces} faces, the most allowed per subject", "subject_face_limit"
        )
    if collection_faces >= limits.max_faces_per_collection:
        raise GalleryLimitExceeded(
            f"collection {collection!r} holds {collection_faces} faces, the most allowed", "collection_face_limit"
        )


def check_new_collection(limits: GalleryLimits, collections: int) -> None:
    if collections >= limits.max_collections:
        raise GalleryLimitExceeded(f"there are {collections} collections, the most allowed", "collection_limit")
