"""People in a collection (issue 22; docs/people.md): its faces grouped into the persons they show,
by domain/people.py's rules, kept by a `PeopleStore`, corrected by hand.

A full pass (`recluster`) reads every face, builds the nearest-neighbour graph (`NeighbourSearch`)
and replaces the collection's people with `cluster`'s groups, keeping the corrections: two faces of
one photo, and the faces of a "not this person", are never one person; one subject's faces are, and
so are the faces of a person a user merged or split by hand (a kept person: its own anchor). A
newly indexed photo's faces join people as they come (`assign_new`, `assign_photo`'s rule) over
the collection's own photo search, so no index of its own is kept: a face's candidates are the best
face of each photo near it (one photo holds one face of a person at most).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.cluster_jobs import ClusterOutcome
from domain.errors import CorrectionsKeptArriving, FaceNotFound, InvalidInput
from domain.gallery import FaceRecord, PersonInfo, is_face_id
from domain.people import (
    DEFAULT_RULES,
    UNASSIGNED,
    Candidate,
    ClusteringRules,
    Constraints,
    assign_photo,
    cluster,
)
from domain.ports import FaceGallery, NeighbourSearch, PeopleStore
from domain.use_cases.gallery_rules import CollectionRules, checked_external_id, checked_face_id, checked_name

Progress = Callable[[str, float], None]  # (stage, fraction of the pass done)
# How many times a pass groups its graph again when corrections land while it runs, before it gives up.
MAX_STORE_TRIES = 5


def checked_person_id(person_id: str) -> str:
    if not is_face_id(person_id):
        raise InvalidInput("A person id is 32 lowercase hex characters", code="invalid_person_id", field="person_id")
    return person_id


@dataclass(frozen=True, slots=True)
class PersonPhoto:
    """A photo a person is in, with the person's face there (one photo holds one face of a person,
    unless a subject's enrolment put two there)."""

    photo_id: str
    faces: list[FaceRecord]


class People:
    def __init__(
        self,
        gallery: FaceGallery,
        store: PeopleStore,
        neighbours: NeighbourSearch,
        rules: CollectionRules,
        clustering: ClusteringRules = DEFAULT_RULES,
    ) -> None:
        self._gallery = gallery
        self._store = store
        self._neighbours = neighbours
        self._rules = rules
        self.clustering = clustering

    def page(self, name: str, after: str | None, limit: int) -> list[PersonInfo]:
        if not 1 <= limit <= self._rules.max_page:
            raise InvalidInput(f"limit must be between 1 and {self._rules.max_page}", field="limit")
        after = after or None  # an empty `after` is the first page, as the photo and subject lists read it
        if after is not None and not is_face_id(after):
            raise InvalidInput("after must be the `next` of a previous page", code="invalid_cursor", field="after")
        return self._store.people(checked_name(name), after, limit)

    def get(self, name: str, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
        return self._store.person(checked_name(name), checked_person_id(person_id))

    def photos(self, name: str, person_id: str) -> tuple[PersonInfo, list[PersonPhoto]]:
        """The photos the person is in, by photo id, each with the person's faces there."""
        person, faces = self.get(name, person_id)
        by_photo: dict[str, list[FaceRecord]] = defaultdict(list)
        for face in faces:
            if face.photo_id is not None:
                by_photo[face.photo_id].append(face)
        return person, [PersonPhoto(photo_id, by_photo[photo_id]) for photo_id in sorted(by_photo)]

    def name(self, name: str, person_id: str, external_id: str) -> tuple[PersonInfo, int]:
        """Name the person: its unlabelled faces become the subject's (created when new), so subject
        search and verify find the person from then on; the person after and how many faces were
        labelled (`FaceGallery.label_faces` says which: one per source, labelled ones left)."""
        checked_external_id(external_id)
        _, faces = self.get(name, person_id)
        labelled = self._gallery.label_faces(name, [face.face_id for face in faces], external_id)
        return self.get(name, person_id)[0], labelled

    def merge(self, name: str, person_id: str, other_id: str) -> PersonInfo:
        """`other_id`'s faces into the person; PeopleNamedDifferently when they hold faces of two
        subjects (two subjects are never one person). An unnamed person's faces merged into a named
        one stay unlabelled until the person is named again, as faces that join it when indexed."""
        return self._store.merge_people(checked_name(name), checked_person_id(person_id), checked_person_id(other_id))

    def split(self, name: str, person_id: str, face_ids: Sequence[str]) -> PersonInfo:
        """The faces (the person's) out into a new person."""
        _, faces = self.get(name, person_id)
        held = {face.face_id for face in faces}
        for face_id in face_ids:
            if checked_face_id(face_id) not in held:
                raise FaceNotFound(f"person {person_id!r} has no face {face_id!r}")
        if set(face_ids) >= held:
            raise InvalidInput("a split leaves the person at least one face", field="face_ids")
        return self._store.move_faces(name, face_ids, None)

    def refuse(self, name: str, person_id: str, face_id: str) -> PersonInfo | None:
        """ "Not this person": the person after, or None when its last face left. A photo face the
        person's naming labelled loses the label (the subject no longer holds it; a re-cluster keeps a
        subject's faces together); a face enrolled to the subject is refused (EnrolledFaceRefused:
        delete it from the subject instead)."""
        return self._store.refuse_face(checked_name(name), checked_person_id(person_id), checked_face_id(face_id))

    def delete(self, name: str, person_id: str) -> int:
        """Forget the person and its faces everywhere (`PeopleStore.delete_person`); how many faces went.
        Their photos stay with their other faces, and indexing one again from the same bytes answers
        it as stored: forgotten faces never come back by themselves (delete the photo to index it anew)."""
        return self._store.delete_person(checked_name(name), checked_person_id(person_id))

    def recluster(self, name: str, progress: Progress = lambda stage, done: None) -> ClusterOutcome:
        """A full pass over the collection's faces (docs/people.md, "The rule"). The faces are read as
        a stream and only what the pass needs is kept: the eligible faces' vectors, ids, photos and
        subjects (about 2 KiB a face at 512-D), and every face id read.

        Corrections made while it runs are kept: the people revision is read before the constraints,
        and when `replace_people` finds it moved (a correction landed meanwhile), the constraints and
        labels are read again and the same graph grouped again (the graph is most of the cost; the
        faces considered stay those first read), at most `MAX_STORE_TRIES` times (CorrectionsKeptArriving)."""
        checked_name(name)
        progress("reading", 0.0)
        revision = self._store.people_revision(name)
        read: set[str] = set()
        eligible = _Eligible()
        for face in self._gallery.faces(name):
            read.add(face.face_id)
            if self.clustering.eligible(None if face.quality is None else face.quality.level):
                eligible.add(face)
        progress("neighbours", 0.1)
        graph = None
        if eligible.face_ids:
            graph = self._neighbours.neighbours(np.stack(eligible.vectors), self.clustering.neighbours)
            eligible.vectors.clear()
        for attempt in range(MAX_STORE_TRIES):
            if attempt:  # a correction landed: the labels as they stand now (constraints below)
                revision = self._store.people_revision(name)
                eligible.relabel(self._gallery.faces(name))
            # Read after the revision: one that lands meanwhile moves it, and the store refuses.
            refusals = self._store.refusals(name)
            kept = self._store.kept_memberships(name)
            progress("grouping", 0.9)
            groups: list[list[str]] = []
            if graph is not None:
                labels = cluster(graph, eligible.constraints(refusals, kept), self.clustering)
                by_label: dict[int, list[str]] = defaultdict(list)
                for face_id, label in zip(eligible.face_ids, labels.tolist(), strict=True):
                    if label != UNASSIGNED:
                        by_label[label].append(face_id)
                groups = list(by_label.values())
            progress("storing", 0.95)
            people = self._store.replace_people(name, groups, read, based_on=revision)
            if people is not None:
                progress("done", 1.0)
                return ClusterOutcome(len(read), len(eligible.face_ids), people, sum(len(group) for group in groups))
        raise CorrectionsKeptArriving(
            f"corrections kept arriving while collection {name!r} was re-clustered ({MAX_STORE_TRIES} tries):"
            " nothing was stored; run it again"
        )

    def assign_new(self, name: str, faces: Sequence[FaceRecord]) -> list[str | None]:
        """A newly stored photo's faces into the people their nearest faces agree on (`assign_photo`);
        each face's person, or None (it waits for the next full pass). Faces below the rules'
        quality are left out."""
        rules = self.clustering
        wanted = [face for face in faces if rules.eligible(None if face.quality is None else face.quality.level)]
        if not wanted:
            return [None] * len(faces)
        own = {face.face_id for face in faces}
        # One search for the photo's faces together (one pass over the faces, or one round trip).
        found_per_face = self._gallery.search_photos_many(
            name, np.stack([face.embedding for face in wanted]), rules.link_similarity, rules.neighbours + 1
        )
        hits_per_face = [[hit for hit in hits if hit.face_id not in own] for hits in found_per_face]
        found = {hit.face_id for hits in hits_per_face for hit in hits}
        person_of = self._store.people_of(name, sorted(found))
        codes = {person: i for i, person in enumerate(sorted(set(person_of.values())))}
        candidates = [
            [Candidate(hit.similarity, codes.get(person_of.get(hit.face_id, ""), UNASSIGNED)) for hit in hits]
            for hits in hits_per_face
        ]
        chosen = assign_photo(candidates, [() for _ in wanted], rules)
        people = {code: person for person, code in codes.items()}
        joined = {face.face_id: people[code] for face, code in zip(wanted, chosen, strict=True) if code != UNASSIGNED}
        if joined:
            self._store.join_people(name, joined)
        return [joined.get(face.face_id) for face in faces]


class _Eligible:
    """What a pass keeps of the faces it groups: their vectors, ids, photos as codes, and subjects."""

    def __init__(self) -> None:
        self.vectors: list[npt.NDArray[np.float32]] = []
        self.face_ids: list[str] = []
        self.photos: list[int] = []
        self.subjects: list[str | None] = []
        self._photo_codes: dict[str, int] = {}

    def add(self, face: FaceRecord) -> None:
        self.vectors.append(np.asarray(face.embedding, dtype=np.float32))
        self.face_ids.append(face.face_id)
        photo = face.photo_id
        self.photos.append(-1 if photo is None else self._photo_codes.setdefault(photo, len(self._photo_codes)))
        self.subjects.append(face.external_id)

    def relabel(self, faces: Iterable[FaceRecord]) -> None:
        """The subjects of these faces as they stand now (a naming or a "not this person" moved them);
        a face no longer stored keeps its old one (the store skips it)."""
        index = {face_id: i for i, face_id in enumerate(self.face_ids)}
        for face in faces:
            i = index.get(face.face_id)
            if i is not None:
                self.subjects[i] = face.external_id

    def constraints(self, refusals: Sequence[tuple[str, str]], kept: Mapping[str, str]) -> Constraints:
        """`kept`: face id -> person id for the faces of people a user shaped by hand. Each kept person
        is an anchor: its subject's code once named (its unlabelled faces stay with the subject's),
        else a code of its own past the subjects'; a labelled face keeps its own subject's code."""
        index = {face_id: i for i, face_id in enumerate(self.face_ids)}
        apart = [(index[a], index[b]) for a, b in refusals if a in index and b in index]
        subject_codes: dict[str, int] = {}
        anchors = [_code(subject_codes, subject) for subject in self.subjects]
        person_anchor: dict[str, int] = {}
        for i, face_id in enumerate(self.face_ids):
            person = kept.get(face_id)
            if person is not None and anchors[i] >= 0:
                person_anchor.setdefault(person, anchors[i])
        next_code = len(subject_codes)
        for i, face_id in enumerate(self.face_ids):
            person = kept.get(face_id)
            if person is not None and anchors[i] < 0:
                if person not in person_anchor:
                    person_anchor[person] = next_code
                    next_code += 1
                anchors[i] = person_anchor[person]
        return Constraints(np.array(self.photos, dtype=np.int64), np.array(anchors, dtype=np.int64), apart)


def _code(codes: dict[str, int], name: str | None) -> int:
    """A small number per distinct name (-1 for none)."""
    return -1 if name is None else codes.setdefault(name, len(codes))
