"""A collection served from an in-memory matrix (SQLite, memory): its values, its matrix, its info."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.stores.matrix import FaceMatrix
from domain.gallery import CollectionInfo


@dataclass
class MatrixCollection:
    name: str
    model_id: str
    dimension: int
    threshold: float
    created_at: datetime
    matrix: FaceMatrix  # every face of the collection, committed ones only

    def info(self) -> CollectionInfo:
        return CollectionInfo(
            name=self.name,
            model_id=self.model_id,
            dimension=self.dimension,
            threshold=self.threshold,
            created_at=self.created_at,
            subjects=self.matrix.subjects,
            faces=len(self.matrix),
        )
