"""The models by task: which class runs a pack's file for each task, and how a pack file finds its task.

Adding a model is a subclass of `OnnxModel` (its graph rule, pre- and post-processing) and a line
in `MODELS`; a pack folder's files are routed by this table (`model_pack.pack_from_dir`) and loaded
through `load_model`, so a second pack needs no new wiring either.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from adapters.models.insightface_backend import InsightFaceDetector, InsightFaceEmbedder
from adapters.models.landmarks import InsightFaceLandmarks
from adapters.models.onnx_model import GraphSignature, OnnxModel

if TYPE_CHECKING:
    from adapters.models.model_pack import ModelPack


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


def load_model(
    task: Task,
    pack: ModelPack,
    providers: Sequence[str],
    options: ort.SessionOptions,
    *,
    warm_up: bool = True,
    **settings: Any,
) -> OnnxModel:
    """The pack's model for `task`, loaded and (unless its caller warms it up itself) warmed up;
    `settings` are the class's own (the detector's threshold, the recogniser's cache folder, ...)."""
    packed = pack.model(task)
    model = MODELS[task](packed.path, providers, options, raw_pixels=packed.raw_pixels, **settings)
    if warm_up:
        model.warm_up()
    return model
