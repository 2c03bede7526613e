"""The rule for adding faces to a collection, decided in one place for every store.

A store reads what the rule needs inside its own transaction (the collection's counts, the faces the
batch's subjects already hold, the faces already enrolled from the same sources, the batch's photos
already stored), asks `plan_additions`, and writes what it answers, or nothing when it raises. So
SQLite, PostgreSQL and memory keep the same promises: one face per source image per subject (a
repeat answers the face already stored, `duplicate`), a subject is created by its first face, a
photo by its first face (or by `add_photo`), a photo already stored keeps the faces it has (a face of
it in the batch is a duplicate; one of other bytes is PhotoExists), and a batch that would pass a
limit is refused whole, before anything is written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from domain.errors import EnrolledFaceRefused, GalleryLimitExceeded, PeopleNamedDifferently, PhotoExists
from domain.gallery import FaceRecord, GalleryLimits


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the store holds, as far as a batch of additions is concerned."""

    subjects: int  # subjects in the collection
    faces: int  # faces in the collection
    subject_faces: Mapping[str, int]  # faces of each of the batch's subjects that exist already
    by_source: Mapping[tuple[str, str], FaceRecord]  # (external id, source digest) -> face already stored
    # The batch's photos stored before it (photo id -> source digest): their faces are kept as they are.
    photos: Mapping[str, str] = field(default_factory=dict)
    # Photos this transaction created (an import's earlier chunks, `add_photo`'s): faces are added to them.
    open_photos: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Additions:
    """What to write, and what to answer for each face asked for (in the order asked)."""

    results: list[tuple[FaceRecord, bool]] = field(default_factory=list)  # (face, duplicate)
    new_faces: list[FaceRecord] = field(default_factory=list)  # to store, in order
    new_subjects: list[FaceRecord] = field(default_factory=list)  # the first face of each subject to create
    new_photos: list[FaceRecord] = field(default_factory=list)  # the first face of each photo to create


def plan_additions(
    collection: str, faces: Sequence[FaceRecord], limits: GalleryLimits, state: StoredState
) -> Additions:
    """Decide every face of the batch; raises GalleryLimitExceeded (and nothing is to be written)
    when one of them would pass a limit."""
    plan = Additions()
    planned: dict[tuple[str, str], FaceRecord] = {}
    added_per_subject: dict[str, int] = {}
    open_photos = dict(state.open_photos)
    subjects = state.subjects
    for face in faces:
        if face.photo_id is not None:
            stored = state.photos.get(face.photo_id)
            if stored is not None:  # indexed before: it keeps the faces it has
                _same_photo(face, stored)
                plan.results.append((face, True))
                continue
            opened = open_photos.get(face.photo_id)
            if opened is None:
                open_photos[face.photo_id] = face.source_digest
                plan.new_photos.append(face)
            else:
                _same_photo(face, opened)
        if face.external_id is None:  # a photo's unlabelled face: only the collection's limit applies
            check_collection_faces(limits, collection, state.faces + len(plan.new_faces))
            plan.new_faces.append(face)
            plan.results.append((face, False))
            continue
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


def _same_photo(face: FaceRecord, stored_digest: str) -> None:
    if face.source_digest != stored_digest:
        raise PhotoExists(f"photo {face.photo_id!r} holds faces of other bytes; delete it first")


def check_collection_faces(limits: GalleryLimits, collection: str, collection_faces: int, adding: int = 1) -> None:
    """Raise GalleryLimitExceeded if `adding` more faces are too many for a collection of `collection_faces`."""
    if adding and collection_faces + adding > limits.max_faces_per_collection:
        raise GalleryLimitExceeded(
            f"collection {collection!r} holds {collection_faces} faces, the most allowed", "collection_face_limit"
        )


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


def plan_labels(
    collection: str,
    faces: Sequence[FaceRecord],
    external_id: str,
    limits: GalleryLimits,
    *,
    subject_exists: bool,
    subjects: int,
    subject_faces: int,
    held_digests: set[str],
) -> list[FaceRecord]:
    """Which of these faces (a person's, being named) become the subject's, relabelled: the
    unlabelled ones, one per source (a source the subject holds already, or an earlier face of the
    batch holds, is skipped: one face per source per subject, as enrolment). GalleryLimitExceeded
    (`subject_limit`, `subject_face_limit`) when they are too many; the collection's face count does
    not change. PeopleNamedDifferently when a face is labelled to another subject: a person is named
    once (two subjects are never one person; naming again with the same subject labels the rest)."""
    other = sorted({face.external_id for face in faces if face.external_id not in (None, external_id)})
    if other:
        raise PeopleNamedDifferently(
            f"the person holds faces of subject {other[0]!r}, not {external_id!r}: two subjects are never one person"
        )
    seen = set(held_digests)
    chosen = []
    for face in faces:
        if face.external_id is not None or face.source_digest in seen:
            continue
        seen.add(face.source_digest)
        chosen.append(replace(face, external_id=external_id))
    if chosen and not subject_exists and subjects >= limits.max_subjects_per_collection:
        raise GalleryLimitExceeded(
            f"collection {collection!r} holds {subjects} subjects, the most allowed", "subject_limit"
        )
    if chosen and subject_faces + len(chosen) > limits.max_faces_per_subject:
        raise GalleryLimitExceeded(
            f"the subject has {subject_faces} faces; {len(chosen)} more are too many per subject", "subject_face_limit"
        )
    return chosen


def unlabels_on_refusal(face: FaceRecord) -> bool:
    """Whether "not this person" on `face` also takes its label away: a photo face labelled to a subject
    (only naming labels a photo face) goes back to an unlabelled photo face, so the subject (and a
    re-cluster, which keeps a subject's faces together) no longer holds it. A face enrolled to a subject
    (no photo) is the subject's by the caller's word: EnrolledFaceRefused (delete it from the subject)."""
    if face.external_id is None:
        return False
    if face.photo_id is None:
        raise EnrolledFaceRefused(
            f"face {face.face_id!r} was enrolled to subject {face.external_id!r}, not found in a photo:"
            " delete it from the subject instead"
        )
    return True


def check_merge(subjects: Collection[str], other_subjects: Collection[str]) -> None:
    """A merge of two people holding faces of these subjects (each person's): PeopleNamedDifferently when
    one holds a subject's face and the other another subject's, since two subjects are never one person.
    A named and an unnamed person merge (the unnamed one's faces stay unlabelled until named again)."""
    different = {(a, b) for a in subjects for b in other_subjects if a != b}
    if different:
        a, b = min(different)
        raise PeopleNamedDifferently(f"the people are named {a!r} and {b!r}: two subjects are never one person")
