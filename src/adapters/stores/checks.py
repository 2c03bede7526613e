"""What every gallery checks the same way: collections, faces and probes of the collection's dimension.

The limits are the add-faces rule's (domain/additions.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from domain.errors import InvalidEmbedding, InvalidInput
from domain.gallery import FaceRecord, PhotoInfo, collection_problem, face_values_problem, is_face_id


def now() -> datetime:
    return datetime.now(UTC)


def collection(name: str, model_id: str, dimension: int, threshold: float) -> None:
    """Refuse a collection no store may hold (what a store reads back at start must be servable)."""
    problem = collection_problem(name, model_id, dimension, threshold)
    if problem is not None:
        raise InvalidInput(f"This collection cannot be stored: {problem}", code="invalid_collection")


def stored(face: FaceRecord, dimension: int) -> FaceRecord:
    """The face as a store keeps it, after checking its values: its embedding a float32 row of the
    collection's dimension, a copy (the caller's array may change after). Nothing is written that a
    store could not read back and serve."""
    _face_values(face)
    values = np.array(face.embedding, dtype=np.float32).reshape(-1)
    if values.shape[0] != dimension:
        raise InvalidEmbedding(
            f"the embedding has {values.shape[0]} values; the collection's have {dimension}", "embedding"
        )
    if not np.isfinite(values).all():
        raise InvalidEmbedding("the embedding holds a non-finite value", "embedding")
    return replace(face, embedding=values)


def _face_values(face: FaceRecord) -> None:
    # The use cases hold ids to their rules (domain.gallery); a store needs bounded text it can look
    # up: no NUL, which PostgreSQL's text cannot hold and SQLite's JSON lookups cut short.
    if face.external_id is None and face.photo_id is None:
        raise InvalidInput("A face belongs to a subject, a photo or both", code="invalid_request")
    if face.external_id is not None and not _text(face.external_id):
        raise InvalidInput("An external id is 1 to 128 characters, none of them NUL", code="invalid_external_id")
    if face.photo_id is not None and not _text(face.photo_id):
        raise InvalidInput("A photo id is 1 to 128 characters, none of them NUL", code="invalid_photo_id")
    if not is_face_id(face.face_id):
        raise InvalidInput("A face id is 32 lowercase hex characters", code="invalid_face_id")
    if not _text(face.source_digest):
        raise InvalidInput("A face's source digest is 1 to 128 characters, none of them NUL", code="invalid_request")
    numbers = [*(face.bbox or ()), *([] if face.confidence is None else [face.confidence])]
    if (face.bbox is not None and len(face.bbox) != 4) or not all(math.isfinite(value) for value in numbers):
        raise InvalidInput("A face's box is four finite numbers and its confidence finite", code="invalid_request")
    problem = face_values_problem(face.landmarks, face.quality)
    if problem is not None:
        raise InvalidInput(f"This face cannot be stored: {problem}", code="invalid_request")


def photo_faces(photo: PhotoInfo, faces: Sequence[FaceRecord], dimension: int) -> list[FaceRecord]:
    """A photo's faces as `stored` checks them, each of them unlabelled, of this photo and its bytes."""
    if not _text(photo.photo_id):
        raise InvalidInput("A photo id is 1 to 128 characters, none of them NUL", code="invalid_photo_id")
    if not _text(photo.source_digest):
        raise InvalidInput("A photo's source digest is 1 to 128 characters, none of them NUL", code="invalid_request")
    for face in faces:
        if (face.photo_id, face.source_digest, face.external_id) != (photo.photo_id, photo.source_digest, None):
            raise InvalidInput(
                "A photo's faces are unlabelled faces of that photo and its bytes", code="invalid_request"
            )
    return [stored(face, dimension) for face in faces]


def _text(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 128 and "\x00" not in value


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
