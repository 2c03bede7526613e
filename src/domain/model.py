"""Value types of the face domain (all immutable)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.quality import FaceQuality

Vector = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Image:
    """A decoded image: BGR, 8 bits per channel, shape (height, width, 3).

    `source_size` is the (width, height) of the image the caller sent when it was decoded at a
    reduced resolution; coordinates are reported in those pixels.
    """

    pixels: Pixels
    source_size: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def source_width(self) -> int:
        return self.source_size[0] if self.source_size else self.width

    @property
    def source_height(self) -> int:
        return self.source_size[1] if self.source_size else self.height


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A box in the pixels of the image the caller sent; (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def clipped(self, width: int, height: int) -> BoundingBox:
        return BoundingBox(
            x1=min(max(self.x1, 0.0), float(width)),
            y1=min(max(self.y1, 0.0), float(height)),
            x2=min(max(self.x2, 0.0), float(width)),
            y2=min(max(self.y2, 0.0), float(height)),
        )


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found by a detector.

    `landmarks` are five points: left eye, right eye, nose tip, left and right mouth corners
    (the layout ArcFace alignment expects). `quality` is None as a detector finds the face;
    `FaceService` assesses each face it reports.
    """

    box: BoundingBox
    confidence: float
    landmarks: tuple[Point, Point, Point, Point, Point]
    quality: FaceQuality | None = None

    def in_source_pixels(self, image: Image) -> DetectedFace:
        """This face in the pixels of the image as sent, if it was decoded at a reduced size."""
        if image.source_size is None:
            return self
        sx, sy = image.source_width / image.width, image.source_height / image.height
        b = self.box
        x1, y1, x2, y2, p = b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy, self.landmarks
        return DetectedFace(
            box=BoundingBox(x1, y1, x2, y2).clipped(image.source_width, image.source_height),
            confidence=self.confidence,
            landmarks=(
                (p[0][0] * sx, p[0][1] * sy),
                (p[1][0] * sx, p[1][1] * sy),
                (p[2][0] * sx, p[2][1] * sy),
                (p[3][0] * sx, p[3][1] * sy),
                (p[4][0] * sx, p[4][1] * sy),
            ),
            quality=self.quality,
        )


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """Identifies the model that produced an embedding, so vectors from different models never mix."""

    pack: str
    weights_digest: str
    dimension: int

    @property
    def id(self) -> str:
        return f"{self.pack}:{self.weights_digest}"


@dataclass(frozen=True, slots=True)
class EmbeddedFace:
    """A detected face and its L2-normalised embedding."""

    face: DetectedFace
    embedding: Vector
    model: EmbeddingModel
