"""A deterministic backend with no model files: a real runtime mode (FACE_BACKEND=fake).

For client development and fast HTTP tests. It honours the ports' contracts (boxes inside the
image, largest face first, unit-length vectors, the same image giving the same vector) but knows
nothing about faces: any image that is not a flat colour holds exactly one "face" in its middle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from domain.model import BoundingBox, DetectedFace, EmbeddingModel, Image, Vector

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
    model = FAKE_MODEL
    providers: tuple[str, ...] = ()

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        return [self._vector(image, face) for face in faces]

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        return [self.embed(image, faces) for image, faces in items]

    def _vector(self, image: Image, face: DetectedFace) -> Vector:
        box = face.box
        crop = image.pixels[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
        seed = hashlib.sha256(crop.tobytes() + repr(crop.shape).encode()).digest()
        rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
        vector = rng.standard_normal(self.model.dimension).astype(np.float32)
        vector /= np.linalg.norm(vector)
        return vector
