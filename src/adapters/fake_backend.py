"""A deterministic backend with no model files: a real runtime mode (FACE_BACKEND=fake).

For client development and fast HTTP tests. It honours the ports' contracts (boxes inside the
image, largest face first, unit-length vectors, the same image giving the same vector) but knows
nothing about faces: any image that is not a flat colour holds exactly one "face" in its middle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from domain.model import BoundingBox, DetectedFace, EmbeddingModel, Image, Pixels, Vector
from domain.quality import HeadPose, QualityMeasures

FAKE_MODEL = EmbeddingModel(pack="fake", weights_digest="00000000", dimension=512)


class FakeDetector:
    providers: tuple[str, ...] = ()

    def detect(self, image: Image) -> list[DetectedFace]:
        # A flat image holds no face. Sampled: the std of a 40 MP image would need 1 GB of float64.
        step = max(1, int((image.width * image.height / 1_000_000) ** 0.5))
        if float(image.pixels[::step, ::step].std()) < 1.0:
            return []
        w, h = image.width, image.height
        box = BoundingBox(w * 0.25, h * 0.2, w * 0.75, h * 0.8)
        return [
            DetectedFace(
                box=box,
                confidence=0.99,
                landmarks=(
                    (w * 0.40, h * 0.42),
                    (w * 0.60, h * 0.42),
                    (w * 0.50, h * 0.55),
                    (w * 0.42, h * 0.68),
                    (w * 0.58, h * 0.68),
                ),
            )
        ]


class FakeEmbedder:
    """Its "aligned crop" is the pixels inside the box; the vector is seeded by a hash of them."""

    model = FAKE_MODEL
    providers: tuple[str, ...] = ()

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        return self.embed_aligned(self.align(image, faces))

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        return [self.embed(image, faces) for image, faces in items]

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        return [image.pixels[int(f.box.y1) : int(f.box.y2), int(f.box.x1) : int(f.box.x2)] for f in faces]

    def embed_aligned(self, crops: Sequence[Pixels]) -> list[Vector]:
        return [self._vector(crop) for crop in crops]

    def _vector(self, crop: Pixels) -> Vector:
        seed = hashlib.sha256(crop.tobytes() + repr(crop.shape).encode()).digest()
        rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
        vector = rng.standard_normal(self.model.dimension).astype(np.float32)
        vector /= np.linalg.norm(vector)
        return vector


class FakeQualityMeter:
    """Measures what the fake backend has: the box's size, the detector's confidence, the brightness and
    contrast of the pixels in the box (a dark or flat image reads as one). It measures no sharpness and
    no compression, and its faces look straight ahead (its landmarks are symmetric): sharpness is
    reported as 1.0, blockiness as null and the pose as 0."""

    def measure(self, image: Image, faces: Sequence[DetectedFace], crops: Sequence[Pixels]) -> list[QualityMeasures]:
        return [self._measures(face, crop) for face, crop in zip(faces, crops, strict=True)]

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        return [image.pixels[int(f.box.y1) : int(f.box.y2), int(f.box.x1) : int(f.box.x2)] for f in faces]

    def _measures(self, face: DetectedFace, crop: Pixels) -> QualityMeasures:
        step = max(1, int((crop.shape[0] * crop.shape[1] / 250_000) ** 0.5))  # sampled, as the detector's
        grey = crop[::step, ::step].mean(axis=2) / 255.0 if crop.size else np.zeros((1, 1))
        (left_x, left_y), (right_x, right_y) = face.landmarks[0], face.landmarks[1]
        return QualityMeasures(
            face_size=round(min(face.box.x2 - face.box.x1, face.box.y2 - face.box.y1), 1),
            eye_distance=round(float(np.hypot(right_x - left_x, right_y - left_y)), 1),
            pose=HeadPose(0.0, 0.0, 0.0),
            sharpness=1.0,
            brightness=round(float(grey.mean()), 4),
            contrast=round(float(grey.std()), 4),
            blockiness=None,
            confidence=face.confidence,
        )
