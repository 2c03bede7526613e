"""What every gallery checks the same way: vectors and probes of the collection's dimension, the limits."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from domain.errors import GalleryLimitExceeded, InvalidEmbedding, InvalidInput
from domain.gallery import FaceRecord, GalleryLimits, collection_problem, is_face_id


def now() -> datetime:
    return datetime.now(UTC)


def collection(name: str, model_id: str, dimension: int, threshold: float) -> None:
    """Refuse a collection no store may hold (what a store reads back at start must be servable)."""
    problem = collection_problem(name, model_id, dimension, threshold)
    if problem is not None:
        raise InvalidInput(f"This collection cannot be stored: {problem}", code="invalid_collection")


def vector(face: FaceRecord, dimension: int) -> npt.NDArray[np.float32]:
    """The face's embedding as a contiguous float32 row of the collection's dimension, after checking
    the face's other values: nothing is written that a store could not read back and serve."""
    _face_values(face)
    values = np.ascontiguousarray(face.embedding, dtype=np.float32).reshape(-1)
    if values.shape[0] != dimension:
        raise InvalidEmbedding(
            f"the embedding has {values.shape[0]} values; the collection's have {dimension}", "embedding"
        )
    if not np.isfinite(values).all():
        raise InvalidEmbedding("the embedding holds a non-finite value", "embedding")
    return values


def _face_values(face: FaceRecord) -> None:
    # The use cases hold external ids to their rules (domain.gallery.is_external_id); a store needs a
    # bounded string only.
    if not isinstance(face.external_id, str) or not 1 <= len(face.external_id) <= 128:
        raise InvalidInput("An external id is 1 to 128 characters", code="invalid_external_id")
    if not is_face_id(face.face_id):
        raise InvalidInput("A face id is 32 lowercase hex characters", code="invalid_face_id")
    if not isinstance(face.source_digest, str) or not 1 <= len(face.source_digest) <= 128:
        raise InvalidInput("A face's source digest is 1 to 128 characters", code="invalid_request")
    numbers = [*(face.bbox or ()), *([] if face.confidence is None else [face.confidence])]
    if (face.bbox is not None and len(face.bbox) != 4) or not all(math.isfinite(value) for value in numbers):
        raise InvalidInput("A face's box is four finite numbers and its confidence finite", code="invalid_request")


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
