"""The ports: what the use cases need from the outside world, and nothing about how it is done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from face_service.domain.model import DetectedFace, EmbeddingModel, Image, Vector


class ImageDecoder(Protocol):
    """Turns the bytes a caller sent into an `Image`, or raises a domain error saying why it cannot."""

    def decode(self, data: bytes) -> Image: ...


class FaceDetector(Protocol):
    """Finds faces in an image."""

    def detect(self, image: Image) -> list[DetectedFace]:
        """Every face found, largest first, boxes and landmarks in the image's own pixels."""
        ...


class Embedder(Protocol):
    """Turns detected faces into identity embeddings."""

    @property
    def model(self) -> EmbeddingModel: ...

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        """One L2-normalised vector of `model.dimension` floats per face, in the order given."""
        ...

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        """`embed` for several images at once, so the model can run all their faces together."""
        ...


class Similarity(Protocol):
    """Scores how alike embeddings are: higher means more likely the same person."""

    def scores(self, probe: Vector, candidates: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """`candidates` has shape (n, d); returns n scores."""
        ...


class ServiceObserver(Protocol):
    """Where the use cases report for monitoring: how long each stage took, how many faces an image held."""

    def stage(self, name: str, seconds: float) -> None: ...

    def faces(self, count: int) -> None: ...
