"""The real backend: InsightFace's SCRFD detector and ArcFace recogniser, run on ONNX Runtime.

These classes run InsightFace's ONNX graphs with InsightFace's own pre- and post-processing
(`insightface.model_zoo.scrfd.SCRFD` and `arcface_onnx.ArcFaceONNX`), written against ONNX Runtime
directly: importing the insightface package costs about 1.7 s and 40 MB (it pulls in scipy,
scikit-image and onnx), which would double the service's start time. Tests check boxes, landmarks
and embeddings against insightface.model_zoo on the bundled photos. Sessions, warm-up and the graph
rewrite are the base's (`onnx_model.OnnxModel`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from adapters.models.alignment import align_face
from adapters.models.onnx_model import GraphSignature, OnnxModel, subtracts_and_scales_inside
from domain.errors import ModelUnavailable
from domain.model import BoundingBox, DetectedFace, EmbeddingModel, Image, Pixels, Point, Vector

STRIDE = 32  # SCRFD's coarsest feature stride: input sides must be multiples of it
NMS_THRESHOLD = 0.4  # insightface's default
# Faces per recogniser run. On CPUs batching saves nothing (the bench measures it), and the
# activations of one run grow with its size: runs of 8 keep each job's peak memory small.
MAX_RECOGNISER_BATCH = 8
Floats = npt.NDArray[np.float32]


def detector_input_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The detector input for an image: its own size scaled down to fit `max_side`, rounded up to
    multiples of 32, and never enlarged. Small images and tight face crops keep their faces at a
    scale SCRFD finds, instead of being stretched to 640x640."""
    scale = min(1.0, max_side / max(width, height))
    return (
        max(STRIDE, math.ceil(width * scale / STRIDE) * STRIDE),
        max(STRIDE, math.ceil(height * scale / STRIDE) * STRIDE),
    )


class InsightFaceDetector(OnnxModel):
    """SCRFD face detection with the input sized to each image."""

    normalisation = (127.5, 128.0)  # SCRFD's, always: its exports do not normalise inside

    @classmethod
    def accepts(cls, signature: GraphSignature) -> bool:
        return len(signature.outputs) >= 5  # insightface's router: RetinaFace and SCRFD

    def __init__(
        self,
        path: Path,
        providers: Sequence[str],
        options: ort.SessionOptions,
        *,
        max_side: int,
        threshold: float,
        raw_pixels: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self._max_side = max_side
        self._threshold = threshold
        self._centers: dict[tuple[int, int, int], Floats] = {}
        super().__init__(path, providers, options, raw_pixels=raw_pixels, cache_dir=cache_dir)

    def _read_graph(self, inputs: list[Any], outputs: list[Any]) -> None:
        # SCRFD exports: 3 strides x (scores, boxes[, keypoints]) or 5 strides x (...).
        layouts = {6: (3, 2, False), 9: (3, 2, True), 10: (5, 1, False), 15: (5, 1, True)}
        if len(outputs) not in layouts:
            raise ModelUnavailable(f"Model file {self.path} is not an SCRFD face detector")
        levels, self._anchors, has_keypoints = layouts[len(outputs)]
        if not has_keypoints:
            raise ModelUnavailable(f"Detector {self.path} has no facial landmarks; alignment needs them")
        self._strides = (8, 16, 32, 64, 128)[:levels]
        self._levels = levels
        self._batched = len(outputs[0].shape) == 3

    def input_size(self, image: Image) -> tuple[int, int]:
        return detector_input_size(image.width, image.height, self._max_side)

    def detect(self, image: Image) -> list[DetectedFace]:
        boxes, keypoints = self._detect(image.pixels, self.input_size(image))
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

    def _detect(self, pixels: npt.NDArray[np.uint8], size: tuple[int, int]) -> tuple[Floats, Floats]:
        # Letterbox exactly as insightface's SCRFD: keep the aspect ratio, pad right and bottom.
        height, width = pixels.shape[:2]
        input_width, input_height = size
        if height / width > input_height / input_width:
            new_height, new_width = input_height, int(input_height / (height / width))
        else:
            new_width, new_height = input_width, int(input_width * (height / width))
        # A very thin image (1x641, 10x12000) scales to under a pixel on its short side: keep one.
        new_width, new_height = max(1, new_width), max(1, new_height)
        scale = new_height / height
        canvas = np.zeros((input_height, input_width, 3), dtype=np.uint8)
        canvas[:new_height, :new_width] = cv2.resize(pixels, (new_width, new_height))
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / self.input_std, size, (self.input_mean,) * 3, swapRB=True)
        outputs = self._session.run(self._output_names, {self._input_name: blob})

        scores_list, boxes_list, points_list = [], [], []
        for level, stride in enumerate(self._strides):
            scores = self._level(outputs, level)
            keep = np.where(scores >= self._threshold)[0]
            if keep.size == 0:
                continue
            centers = self._anchor_centers(input_height // stride, input_width // stride, stride)[keep]
            distances = self._level(outputs, level + self._levels)[keep] * stride
            offsets = self._level(outputs, level + 2 * self._levels)[keep] * stride
            boxes = np.hstack([centers - distances[:, :2], centers + distances[:, 2:]])
            points = np.tile(centers, 5) + offsets
            scores_list.append(scores[keep])
            boxes_list.append(boxes)
            points_list.append(points.reshape(-1, 5, 2))
        if not scores_list:
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)

        detections = np.hstack([np.vstack(boxes_list) / scale, np.vstack(scores_list)]).astype(np.float32)
        points = (np.vstack(points_list) / scale).astype(np.float32)
        order = np.argsort(-detections[:, 4], kind="stable")
        detections, points = detections[order], points[order]
        kept = _nms(detections, NMS_THRESHOLD)
        return detections[kept], points[kept]

    def _level(self, outputs: list[Any], index: int) -> Floats:
        """One output of one pyramid level; batched exports carry a leading batch axis."""
        output: Floats = outputs[index][0] if self._batched else outputs[index]
        return output

    def _anchor_centers(self, rows: int, cols: int, stride: int) -> Floats:
        key = (rows, cols, stride)
        centers = self._centers.get(key)
        if centers is None:
            grid = np.stack(list(np.mgrid[:rows, :cols][::-1]), axis=-1).astype(np.float32)
            centers = np.repeat((grid * stride).reshape(-1, 2), self._anchors, axis=0)
            if len(self._centers) < 100:  # a bounded cache: sizes vary with the images sent
                self._centers[key] = centers
        return centers


class InsightFaceEmbedder(OnnxModel):
    """ArcFace embeddings; the faces of a call go through the recogniser together, in runs of at most 8."""

    rewrites_prelu = True

    @classmethod
    def accepts(cls, signature: GraphSignature) -> bool:
        """insightface's router: a square input of at least 112 in steps of 16, except the sides it
        gives to landmark (192), attribute (96) and swapper (128 with two inputs) models."""
        height, width = signature.input_side()
        if height is None or height != width:
            return False
        if height in (192, 96) or (len(signature.inputs) == 2 and height == 128):
            return False
        return height >= 112 and height % 16 == 0

    @classmethod
    def takes_raw_pixels(cls, signature: GraphSignature) -> bool:
        return subtracts_and_scales_inside(signature)

    def __init__(
        self,
        path: Path,
        providers: Sequence[str],
        options: ort.SessionOptions,
        pack_name: str,
        *,
        raw_pixels: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self._pack_name = pack_name
        super().__init__(path, providers, options, raw_pixels=raw_pixels, cache_dir=cache_dir)

    def _read_graph(self, inputs: list[Any], outputs: list[Any]) -> None:
        shape = inputs[0].shape
        if len(outputs) != 1 or len(shape) != 4 or shape[2] != shape[3] or not isinstance(shape[2], int):
            raise ModelUnavailable(f"Model file {self.path} is not an ArcFace recogniser")
        self._crop_size = int(shape[2])
        # The id names the original weights: the rewrite is exact, so embeddings stay comparable.
        self.model = EmbeddingModel(
            pack=self._pack_name, weights_digest=self.digest, dimension=int(outputs[0].shape[-1])
        )

    def embed(self, image: Image, faces: Sequence[DetectedFace]) -> list[Vector]:
        return self.embed_aligned(self.align(image, faces))

    def embed_many(self, items: Sequence[tuple[Image, Sequence[DetectedFace]]]) -> list[list[Vector]]:
        crops = [self.align(image, faces) for image, faces in items]
        features = self.embed_aligned([crop for image_crops in crops for crop in image_crops])
        vectors: list[list[Vector]] = []
        start = 0
        for image_crops in crops:
            vectors.append(features[start : start + len(image_crops)])
            start += len(image_crops)
        return vectors

    def align(self, image: Image, faces: Sequence[DetectedFace]) -> list[Pixels]:
        return [
            align_face(image.pixels, np.asarray(face.landmarks, dtype=np.float64), self._crop_size) for face in faces
        ]

    def embed_aligned(self, crops: Sequence[Pixels]) -> list[Vector]:
        if not crops:
            return []
        size = (self._crop_size, self._crop_size)
        chunks = []
        for start in range(0, len(crops), MAX_RECOGNISER_BATCH):
            run = list(crops[start : start + MAX_RECOGNISER_BATCH])
            blob = cv2.dnn.blobFromImages(run, 1.0 / self.input_std, size, (self.input_mean,) * 3, swapRB=True)
            chunks.append(self._session.run(self._output_names, {self._input_name: blob})[0])
        features = np.concatenate(chunks).astype(np.float32, copy=False)
        features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return list(features)


def _nms(detections: Floats, threshold: float) -> list[int]:
    """Greedy non-maximum suppression, as insightface's (including its +1 pixel areas)."""
    x1, y1, x2, y2 = detections[:, 0], detections[:, 1], detections[:, 2], detections[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-detections[:, 4], kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = width * height / (areas[best] + areas[rest] - width * height)
        order = rest[overlap <= threshold]
    return keep


def _five(points: tuple[Point, ...]) -> tuple[Point, Point, Point, Point, Point]:
    first, second, third, fourth, fifth = points
    return first, second, third, fourth, fifth
