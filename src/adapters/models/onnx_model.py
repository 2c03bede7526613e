"""The model-session base: what every ONNX model of a pack shares, whatever its task.

As Immich's `InferenceModel`: a subclass says which graphs it accepts and how it pre- and
post-processes; the base opens the session on the execution providers (logging which it started
on), reads the input and output names, runs the cached graph rewrite where the subclass asks for
it, and can warm the session up with a dummy input so the first caller does not pay for ONNX
Runtime's lazy initialisation. `registry.py` maps each task to its subclass and loads it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from adapters.models.graph_rewrite import fast_graph
from domain.errors import ModelUnavailable

logger = logging.getLogger(__name__)

Dims = tuple[int | None, ...]


@dataclass(frozen=True, slots=True)
class GraphSignature:
    """What routing needs of a graph, read without opening a session: the shapes of its inputs
    (weights excluded) and outputs, None for a named or unknown dimension; its first nodes' names."""

    inputs: tuple[Dims, ...]
    outputs: tuple[Dims, ...]
    first_nodes: tuple[str, ...]

    def input_side(self) -> tuple[int | None, int | None]:
        """(height, width) of the first input of an NCHW graph; (None, None) if it is not one."""
        dims = self.inputs[0] if self.inputs else ()
        return (dims[2], dims[3]) if len(dims) == 4 else (None, None)


def read_signature(path: Path) -> GraphSignature:
    import onnx  # deferred: about half a second, needed only for MODEL_DIR packs
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load_model(str(path), load_external_data=False).graph
    except (DecodeError, OSError, ValueError) as error:
        raise ModelUnavailable(f"Model file {path} is not a valid ONNX model: {error}") from error
    weights = {tensor.name for tensor in graph.initializer}  # old exports list them as inputs too

    def dims(value: Any) -> Dims:
        return tuple(dim.dim_value or None for dim in value.type.tensor_type.shape.dim)

    return GraphSignature(
        inputs=tuple(dims(value) for value in graph.input if value.name not in weights),
        outputs=tuple(dims(value) for value in graph.output),
        first_nodes=tuple(node.name for node in graph.node[:8]),
    )


def subtracts_and_scales_inside(signature: GraphSignature) -> bool:
    """insightface's test for MXNet exports, which normalise pixels in their first nodes."""
    names = signature.first_nodes
    return any(name.startswith(("Sub", "_minus")) for name in names) and any(
        name.startswith(("Mul", "_mul")) for name in names
    )


def weights_digest(path: Path, length: int = 8) -> str:
    """A short SHA-256 of the weights file: the same name with other weights gets another id."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def open_session(
    path: Path, providers: Sequence[str], options: ort.SessionOptions, graph: Path | bytes | None = None
) -> ort.InferenceSession:
    """A session on `path`'s model, or on `graph`, an equivalent rewrite of it."""
    source = str(graph) if isinstance(graph, Path) else graph if graph is not None else str(path)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as error:  # onnxruntime raises its own, undocumented exception types
        raise ModelUnavailable(f"Model file {path} could not be loaded: {error}") from error


class OnnxModel(ABC):
    """One model file on one ONNX Runtime session, opened when constructed.

    A subclass sets the class attributes below, `accepts` (the graphs of its task, as insightface's
    model router tells them apart) and `_read_graph` (checks and reads the session's layout), then
    adds its own pre- and post-processing around `self._session`.
    """

    # (mean, std): the model is fed (pixel - mean) / std, unless its graph does that itself.
    normalisation: ClassVar[tuple[float, float]] = (127.5, 127.5)
    # Rewrite PReLU layers for the CPU (graph_rewrite.py), cached on disk by weights digest.
    rewrites_prelu: ClassVar[bool] = False
    # The warm-up input's height and width where the graph leaves them open.
    warm_up_side: ClassVar[int] = 256

    @classmethod
    @abstractmethod
    def accepts(cls, signature: GraphSignature) -> bool:
        """Whether a pack file with this graph is a model of this class's task."""

    @classmethod
    def takes_raw_pixels(cls, signature: GraphSignature) -> bool:
        """Whether this graph normalises pixels itself (then it is fed 0-255 values)."""
        return False

    def __init__(
        self,
        path: Path,
        providers: Sequence[str],
        options: ort.SessionOptions,
        *,
        raw_pixels: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        began = time.perf_counter()
        self.path = path
        self.input_mean, self.input_std = (0.0, 1.0) if raw_pixels else self.normalisation
        graph = fast_graph(path, self.digest, cache_dir) if self.rewrites_prelu else None
        self._session = open_session(path, providers, options, graph)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self._input_name: str = inputs[0].name
        self._input_shape: list[int | str | None] = list(inputs[0].shape)
        self._output_names: list[str] = [output.name for output in outputs]
        self.providers: list[str] = list(self._session.get_providers())
        self._read_graph(inputs, outputs)
        if dropped := [provider for provider in providers if provider not in self.providers]:
            logger.warning("%s: execution providers %s did not start for it", path.name, ", ".join(dropped))
        logger.info(
            "%s %s on %s: loaded in %.0f ms",
            type(self).__name__,
            path.name,
            ", ".join(self.providers),
            (time.perf_counter() - began) * 1000,
        )

    @abstractmethod
    def _read_graph(self, inputs: list[Any], outputs: list[Any]) -> None:
        """Check that the session's inputs and outputs are what this class runs, and read its layout;
        raise ModelUnavailable otherwise."""

    @cached_property
    def digest(self) -> str:
        """The original weights' digest (a rewritten graph computes the same function)."""
        return weights_digest(self.path)

    def warm_up(self) -> None:
        """Run the session once on zeros: the first run allocates and initialises kernels."""
        shape = [1] + [dim if isinstance(dim, int) else self.warm_up_side for dim in self._input_shape[1:]]
        self._session.run(self._output_names, {self._input_name: np.zeros(shape, np.float32)})
