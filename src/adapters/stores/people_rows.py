"""What every store's people share (the PeopleStore port, domain/ports.py): new ids, the ids a full
pass's groups keep, and which face shows a person."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

from domain.errors import InvalidInput
from domain.gallery import FaceRecord


def new_person_id() -> str:
    return uuid.uuid4().hex


def carried_ids(
    groups: Sequence[Sequence[str]], old: Mapping[str, str], kept: Collection[str] = frozenset()
) -> list[str]:
    """Each group's person id: a `kept` old person holding some of its faces (a user shaped it by hand:
    it keeps its id, and so its flag), else the old person holding most of its faces (ties: the
    smaller id), when no earlier group took that id, else a new one. Bigger groups choose first, so a
    person that grew keeps its id rather than a splinter of it."""
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i]))
    taken: set[str] = set()
    ids = [""] * len(groups)
    for i in order:
        votes = Counter(old[face_id] for face_id in groups[i] if face_id in old)
        ranked = sorted(votes.items(), key=lambda item: (item[0] not in kept, -item[1], item[0]))
        chosen = next((person for person, _ in ranked if person not in taken), None) or new_person_id()
        taken.add(chosen)
        ids[i] = chosen
    return ids


def with_unread_faces(
    groups: Sequence[Sequence[str]], ids: Sequence[str], old: Mapping[str, str], considered: Collection[str]
) -> list[list[str]]:
    """The pass's groups, each with the faces the pass did not read (stored after it read the
    collection) that were in the person whose id the group keeps: a face that joined a person while
    the pass ran keeps it. `old`: face id -> person id before the pass."""
    position = {person: i for i, person in enumerate(ids)}
    extended = [list(group) for group in groups]
    grouped = {face_id for group in groups for face_id in group}
    for face_id, person in old.items():
        if face_id not in considered and face_id not in grouped and person in position:
            extended[position[person]].append(face_id)
    return extended


def representative(faces: Iterable[FaceRecord]) -> FaceRecord:
    """The face to show for a person: the best quality score (a face with none counts as 0), then the
    first stored (`faces` in the order stored)."""
    best: FaceRecord | None = None
    for face in faces:
        if best is None or _score(face) > _score(best):
            best = face
    assert best is not None, "a person has at least one face"
    return best


def _score(face: FaceRecord) -> float:
    return 0.0 if face.quality is None else face.quality.score


def check_face_ids(face_ids: Sequence[str]) -> list[str]:
    """The distinct face ids to move, in order; InvalidInput when there is none."""
    unique = list(dict.fromkeys(face_ids))
    if not unique:
        raise InvalidInput("name at least one face")
    return unique


def check_groups(groups: Sequence[Sequence[str]]) -> None:
    """InvalidInput when a face is in two groups or a group is empty (a full pass never gives either)."""
    seen: set[str] = set()
    for group in groups:
        if not group:
            raise InvalidInput("a person needs a face")
        for face_id in group:
            if face_id in seen:
                raise InvalidInput(f"face {face_id!r} is in two people")
            seen.add(face_id)
