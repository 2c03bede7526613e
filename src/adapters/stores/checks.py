"""What every gallery checks the same way: vectors and probes of the collection's dimension, the limits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from domain.errors import GalleryLimitExceeded, InvalidEmbedding, InvalidInput
from domain.gallery import FaceRecord, GalleryLimits


def now() -> datetime:
    return datetime.now(UTC)


def vector(face: FaceRecord, dimension: int) -> npt.NDArray[np.float32]:
    """The face's embedding as a contiguous float32 row of the collection's dimension."""
    values = np.ascontiguousarray(face.embedding, dtype=np.float32).reshape(-1)
    if values.shape[0] != dimension:
        raise InvalidEmbedding(
            f"the embedding has {values.shape[0]} values; the collection's have {dimension}", "embedding"
        )
    return values


def probes(values: npt.NDArray[np.float32], dimension: int, top_k: int) -> npt.NDArray[np.float32]:
    """The probes as a contiguous float32 (q, dimension) matrix."""
    if top_k < 1:
        raise InvalidInput("top_k must be at least 1", field="top_k")
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise InvalidEmbedding(f"a probe must have {dimension} values, the collection's dimension", "probes")
    return matrix


def new_face(
    limits: GalleryLimits,
    collection: str,
    *,
    new_subject: bool,
    subjects: int,
    subject_faces: int,
    collection_faces: int,
) -> None:
    """Raise GalleryLimitExceeded if one more face (of a new subject, or of one with `subject_faces`) is too many."""
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


def new_collection(limits: GalleryLimits, collections: int) -> None:
    if collections >= limits.max_collections:
        raise GalleryLimitExceeded(f"there are {collections} collections, the most allowed", "collection_limit")
