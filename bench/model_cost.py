"""The raw cost of the models: ONNX Runtime forward time of the detector and recogniser at the
input sizes the service actually uses, with the service's own session options."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from adapters.models.insightface_backend import InsightFaceDetector, InsightFaceEmbedder
from adapters.models.model_pack import embedded_pack
from adapters.models.onnx_runtime import session_options


def _median_ms(work: Callable[[], object], repeat: int) -> float:
    work()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


class ModelCost:
    def __init__(self, intra_op_threads: int) -> None:
        pack = embedded_pack()
        options = session_options(intra_op_threads)
        self.detector = InsightFaceDetector(
            pack.detector, ["CPUExecutionProvider"], options, max_side=640, threshold=0.5
        )
        self.embedder = InsightFaceEmbedder(pack.recognizer, ["CPUExecutionProvider"], options, pack.name)

    def detector_ms(self, width: int, height: int, repeat: int = 15) -> float:
        session = self.detector._session
        blob = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
        name = session.get_inputs()[0].name
        return _median_ms(lambda: session.run(None, {name: blob}), repeat)

    def recogniser_ms(self, faces: int, repeat: int = 15) -> float:
        session = self.embedder._session
        blob = np.random.default_rng(0).standard_normal((faces, 3, 112, 112)).astype(np.float32)
        name = session.get_inputs()[0].name
        return _median_ms(lambda: session.run(None, {name: blob}), repeat)

    def batching_speedup(self, faces: int = 8) -> float:
        one_at_a_time = self.recogniser_ms(1) * faces
        return one_at_a_time / self.recogniser_ms(faces)
