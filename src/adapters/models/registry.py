"""The models by task: which class runs a pack's file for each task, and how a pack file finds its task.

Adding a model is a subclass of `OnnxModel` (its graph rule, pre- and post-processing) and a line
in `MODELS`; a pack folder's files are routed by this table (`model_pack.pack_from_dir`) and loaded
through `load_model`, so a second pack needs no new wiring either.
"""

from __future__ import annotations

from enum import StrEnum

from adapters.models.insightface_backend import InsightFaceDetector, InsightFaceEmbedder
from adapters.models.landmarks import InsightFaceLandmarks
from adapters.models.onnx_model import GraphSignature, OnnxModel


class Task(StrEnum):
    DETECTION = "detection"
    RECOGNITION = "recognition"
    LANDMARKS_2D_106 = "landmarks_2d_106"


# In routing order: a pack file goes to the first class that accepts its graph.
MODELS: dict[Task, type[OnnxModel]] = {
    Task.DETECTION: InsightFaceDetector,
    Task.RECOGNITION: InsightFaceEmbedder,
    Task.LANDMARKS_2D_106: InsightFaceLandmarks,
}


def task_of(signature: GraphSignature) -> Task | None:
    return next((task for task, model in MODELS.items() if model.accepts(signature)), None)
