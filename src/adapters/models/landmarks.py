"""106 facial landmarks per face: insightface's 2d106det, with the pre- and post-processing of
`insightface.model_zoo.landmark.Landmark` (tests compare the points with insightface's own).

No route uses it: the face-quality head pose comes from the detector's five points, which
bench/quality.py measured as accurate as these 106 (docs/quality.md) at no model cost. So the
container loads it only when asked for (`Container.landmarks`; the bench does): start-up time and
memory are as without it. Its rewritten graph is cached as the recogniser's; `face-service prepare`
does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from adapters.models.onnx_model import GraphSignature, OnnxModel, subtracts_and_scales_inside
from domain.errors import ModelUnavailable
from domain.model import BoundingBox, DetectedFace, Image

POINTS = 106
CROP_MARGIN = 1.5  # the crop's side is 1.5 times the box's longer side, as insightface's
MAX_LANDMARK_BATCH = 8  # faces per run, as the recogniser's
Landmarks = npt.NDArray[np.float32]


class InsightFaceLandmarks(OnnxModel):
    """2d106det: each face's 106 (x, y) points, found in a crop around its detected box."""

    normalisation = (127.5, 128.0)
    rewrites_prelu = True  # exact here too, and twice as fast on a CPU (6.8 against 13.4 ms a face)

    @classmethod
    def accepts(cls, signature: GraphSignature) -> bool:
        """insightface's router sends 192x192 inputs to its Landmark; of those, this class takes the
        2D ones with 106 points (the 3D 68-point model, 1k3d68, is another task)."""
        outputs = signature.outputs
        return signature.input_side() == (192, 192) and len(outputs) == 1 and outputs[0][-1:] == (2 * POINTS,)

    @classmethod
    def takes_raw_pixels(cls, signature: GraphSignature) -> bool:
        # insightface's Landmark also counts a `bn_data` node among the first three.
        return subtracts_and_scales_inside(signature) or "bn_data" in signature.first_nodes[:3]

    def _read_graph(self, inputs: list[Any], outputs: list[Any]) -> None:
        shape = inputs[0].shape
        values = outputs[0].shape[-1] if len(outputs) == 1 else None
        if len(shape) != 4 or shape[2] != shape[3] or not isinstance(shape[2], int) or values != 2 * POINTS:
            raise ModelUnavailable(f"Model file {self.path} is not a {POINTS}-point landmark model")
        self._side = int(shape[2])

    def locate(self, image: Image, faces: Sequence[DetectedFace]) -> list[Landmarks]:
        """Each face's points as a (106, 2) array in the image's pixels."""
        if not faces:
            return []
        matrices = [self._crop_matrix(face.box) for face in faces]
        crops = [cv2.warpAffine(image.pixels, matrix, (self._side, self._side), borderValue=0.0) for matrix in matrices]
        runs = []
        for start in range(0, len(crops), MAX_LANDMARK_BATCH):
            blob = cv2.dnn.blobFromImages(
                crops[start : start + MAX_LANDMARK_BATCH],
                1.0 / self.input_std,
                (self._side, self._side),
                (self.input_mean,) * 3,
                swapRB=True,
            )
            runs.append(self._session.run(self._output_names, {self._input_name: blob})[0])
        in_crops = np.concatenate(runs).reshape(len(faces), -1, 2)[:, -POINTS:]
        in_crops = (in_crops + 1) * (self._side // 2)  # from [-1, 1] to the crop's pixels
        located = []
        for points, matrix in zip(in_crops, matrices, strict=True):
            back = cv2.invertAffineTransform(matrix)
            located.append((points @ back[:, :2].T + back[:, 2]).astype(np.float32))
        return located

    def _crop_matrix(self, box: BoundingBox) -> npt.NDArray[np.float64]:
        """insightface's `face_align.transform` without rotation: the box's centre to the crop's
        centre, its longer side scaled to the crop's side / 1.5. In float32 up to the translation,
        as insightface computes from its float32 boxes (float64 moves points by 1e-3 pixels)."""
        x1, y1, x2, y2 = np.array([box.x1, box.y1, box.x2, box.y2], dtype=np.float32)
        longer = max(x2 - x1, y2 - y1, np.float32(1.0))  # a degenerate box must not divide by zero
        scale = np.float32(self._side) / (longer * np.float32(CROP_MARGIN))
        shift_x, shift_y = float((x1 + x2) / 2 * scale), float((y1 + y2) / 2 * scale)
        half = self._side / 2
        return np.array([[float(scale), 0.0, half - shift_x], [0.0, float(scale), half - shift_y]])
