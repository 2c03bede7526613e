"""The real backend: InsightFace's SCRFD detector and ArcFace recogniser on ONNX Runtime."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from adapters.alignment import align_face
from adapters.model_pack import weights_digest
from domain.errors import ModelUnavailable
from domain.model import BoundingBox, DetectedFace, EmbeddingModel, Image, Point, Vector

STRIDE = 32  # SCRFD's coarsest feature stride: input sides must be multiples of it


def detector_input_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The detector input for an image: its own size scaled down to fit `max_side`, rounded up to
    multiples of 32, and never enlarged. Small images and tight face crops keep their faces at a
    scale SCRFD finds, instead of being stretched to 640x640."""
    scale = min(1.0, max_side / max(width, height))
    return (
        max(STRIDE, math.ceil(width * scale / STRIDE) * STRIDE),
        max(STRIDE, math.ceil(height * scale / STRIDE) * STRIDE),
    )


def _load(path: Path, providers: list[str], options: ort.SessionOptions, **kwargs: Any) -> Any:
    # insightface is imported here, not at module level: the fake backend must not pay for it.
    from insightface import model_zoo

    try:
        return model_zoo.get_model(str(path), providers=providers, sess_options=options, **kwargs)
    except Exception as error:  # onnxruntime raises its own, undocumented exception types
        raise ModelUnavailable(f"Model file {path} could not be loaded: {error}") from error


class InsightFaceDetector:
    """SCRFD face detection with the input sized to each image."""

    def __init__(
        self,
        path: Path,
        providers: list[str],
        options: ort.SessionOptions,
        max_side: int = 640,
        threshold: float = 0.5,
    ) -> None:
        # One dynamic-shape session for every input size; insightface's default would build and keep
        # a new session for every distinct resolution it sees.
        self._model = _load(path, providers, options, static_shape_sessions=False)
        if type(self._model).__name__ != "SCRFD":
            raise ModelUnavailable(f"Model file {path} is not an SCRFD face detector")
        self._model.prepare(ctx_id=0, det_thresh=threshold, nms_thresh=0.4)
        self._max_side = max_side
        self._threshold = threshold
        self.name = path.stem
        self.providers: list[str] = list(self._model.session.get_providers())

    def detect(self, image: Image) -> list[DetectedFace]:
        size = detector_input_size(image.width, image.height, self._max_side)
        boxes, keypoints = self._model.detect(image.pixels, input_size=size, det_thresh=self._threshold)
        faces = []
        for index in range(boxes.shape[0]):
            x1, y1, x2, y2, score = (float(v) for v in boxes[index])
            points = tuple((float(x), float(y)) for x, y in keypoints[index])
            faces.append(
                DetectedFace(
                    box=BoundingBox(x1, y1, x2, y2).clipped(image.width, image.height),
                    confidence=score,
                    landmarks=_five(points),
                )
            )
        faces.sort(key=lambda face: face.box.area, reverse=True)
        return faces


class InsightFaceEmbedder:
    """ArcFace embeddings; all faces of a call go through the recogniser in one batch."""

    def __init__(self, path: Path, providers: list[str], options: ort.SessionOptions, pack_name: str) -> None:
        self._model = _load(path, providers, options)
        if type(self._model).__name__ != "ArcFaceONNX":
            raise ModelUnavailable(f"Model file {path} is not an ArcFace recogniser")
        dimension = int(self._model.output_shape[-1])
        self.model = EmbeddingModel(pack=pack_name, weights_digest=weights_digest(path), dimension=dimension)
        self.providers: list[str] = list(self._model.session.get_providers())
        self._crop_size = int(self._model.input_size[0])

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        if not faces:
            return []
        crops = [
            align_face(image.pixels, np.asarray(face.landmarks, dtype=np.float64), self._crop_size) for face in faces
        ]
        features = np.asarray(self._model.get_feat(crops), dtype=np.float32).reshape(len(faces), -1)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features /= np.maximum(norms, 1e-12)
        return list(features)


def _five(points: tuple[Point, ...]) -> tuple[Point, Point, Point, Point, Point]:
    first, second, third, fourth, fifth = points
    return first, second, third, fourth, fifth
