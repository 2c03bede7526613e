"""The baseline: what the seed's app does, in-process. insightface's FaceAnalysis with
det_size=(640, 640), restricted to detection and recognition, one image at a time, on the same
model files as the service."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adapters.models.model_pack import embedded_pack


class Baseline:
    def __init__(self) -> None:
        from insightface.app import FaceAnalysis

        pack = embedded_pack()
        self._folder = tempfile.TemporaryDirectory(prefix="bench-pack-")
        folder = Path(self._folder.name)
        for path in (pack.detector, pack.recognizer):
            (folder / path.name).symlink_to(path)
        self.app = FaceAnalysis(
            name=str(folder), allowed_modules=["detection", "recognition"], providers=["CPUExecutionProvider"]
        )
        self.app.prepare(ctx_id=0, det_size=(640, 640))

    def faces(self, data: bytes) -> list[Any]:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return list(self.app.get(pixels))

    def throughput(self, requests: list[list[bytes]]) -> float:
        """Images per second, one at a time."""
        self.faces(requests[0][0])  # warm
        images = [image for request in requests for image in request]
        start = time.perf_counter()
        for image in images:
            self.faces(image)
        return len(images) / (time.perf_counter() - start)

    @staticmethod
    def compare_throughput(bodies: list[bytes]) -> float:
        """The seed compares one pair per call: 1,000 candidates are 1,000 cosine computations."""
        import json

        start = time.perf_counter()
        for body in bodies:
            payload = json.loads(body)
            probe = np.asarray(payload["embedding_a"])
            for candidate in payload["candidates"]:
                b = np.asarray(candidate)
                float(np.dot(probe, b) / (np.linalg.norm(probe) * np.linalg.norm(b)))
        return len(bodies) / (time.perf_counter() - start)
