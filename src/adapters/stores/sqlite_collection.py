"""What the SQLite gallery keeps in memory of a collection (its matrices and counts), and what one
transaction adds to it until its commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from adapters.stores.matrix import FaceMatrix
from adapters.stores.matrix_collection import MatrixCollection
from domain.additions import Additions, StoredState
from domain.gallery import CollectionInfo, FaceRecord

LOAD_CHUNK = 4096  # rows of a committed batch appended to a matrix at a time (a start: sqlite_load.py)


@dataclass
class Adding:
    """What one transaction has added to a collection: counted with the matrix for the limits while it
    runs, appended to the matrix after its commit (never before: a search must not find a face a
    rollback would take back)."""

    faces: list[FaceRecord] = field(default_factory=list)
    subjects: int = 0  # created
    per_subject: Counter[str] = field(default_factory=Counter)  # faces added, by external id
    photos: dict[str, tuple[int, str]] = field(default_factory=dict)  # created: photo id -> (row id, digest)
    duplicates: int = 0

    def stored_state(
        self,
        target: SqliteCollection,
        subjects: Iterable[str],
        by_source: dict[tuple[str, str], FaceRecord],
        photos: dict[str, tuple[int, str]],
    ) -> StoredState:
        """The add-faces rule's view of the collection: the matrices (committed) and this transaction's."""
        matrix = target.matrix
        held = {name: matrix.faces_of(name) + self.per_subject[name] for name in subjects}
        before = {photo_id: digest for photo_id, (_, digest) in photos.items() if photo_id not in self.photos}
        opened = {photo_id: digest for photo_id, (_, digest) in self.photos.items()}
        faces = target.faces + len(self.faces)
        return StoredState(matrix.subjects + self.subjects, faces, held, by_source, before, opened)

    def add(self, plan: Additions) -> None:
        self.faces += plan.new_faces
        self.subjects += len(plan.new_subjects)
        self.per_subject.update(face.external_id for face in plan.new_faces if face.external_id is not None)
        self.duplicates += sum(1 for _, duplicate in plan.results if duplicate)

    def commit(self, target: SqliteCollection) -> None:
        target.append(self.faces)
        target.photos += len(self.photos)


@dataclass
class SqliteCollection(MatrixCollection):
    id: int  # its row in `collections`
    photo_matrix: FaceMatrix | None = None  # the faces with a photo id, grouped by photo
    unlabelled: int = 0  # faces of no subject (in `photo_matrix` only)
    photos: int = 0

    def __post_init__(self) -> None:
        if self.photo_matrix is None:
            self.photo_matrix = FaceMatrix(self.dimension)

    @property
    def by_photo(self) -> FaceMatrix:
        assert self.photo_matrix is not None
        return self.photo_matrix

    @property
    def faces(self) -> int:
        return len(self.matrix) + self.unlabelled

    def info(self) -> CollectionInfo:
        return replace(super().info(), faces=self.faces, photos=self.photos)

    def append(self, faces: Sequence[FaceRecord]) -> None:
        """Committed faces into the matrices: the labelled ones by subject, those of photos by photo."""
        for start in range(0, len(faces), LOAD_CHUNK):
            chunk = faces[start : start + LOAD_CHUNK]
            labelled = [face for face in chunk if face.external_id is not None]
            pictured = [face for face in chunk if face.photo_id is not None]
            self.unlabelled += len(chunk) - len(labelled)
            for matrix, group, names in (
                (self.matrix, labelled, [face.external_id or "" for face in labelled]),
                (self.by_photo, pictured, [face.photo_id or "" for face in pictured]),
            ):
                if group:
                    matrix.append([face.face_id for face in group], names, np.stack([face.embedding for face in group]))
