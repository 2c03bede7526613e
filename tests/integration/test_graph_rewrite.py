"""The PReLU rewrite: exact on any slope, cached by weights digest, safe when the cache is read-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from unittest.mock import patch

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from adapters.models.graph_rewrite import fast_graph, rewrite_prelu
from adapters.models.model_pack import embedded_pack
from adapters.models.onnx_model import weights_digest


def prelu_model(path: Path, slopes: np.ndarray) -> Path:
    channels = slopes.size
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["y"])],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, channels, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, channels, 4, 4])],
        [numpy_helper.from_array(slopes.reshape(channels, 1, 1).astype(np.float32), "slope")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def run(model: str | bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_the_rewrite_is_exact_for_any_slope(tmp_path: Path) -> None:
    slopes = np.array([-0.8, 0.0, 0.25, 1.0, 2.5])  # negative, zero, usual, one, above one
    path = prelu_model(tmp_path / "prelu.onnx", slopes)
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 4)).astype(np.float32)
    rewritten, count = rewrite_prelu(path)
    assert count == 1
    expected = np.where(x > 0, x, x * slopes.reshape(1, 5, 1, 1))
    np.testing.assert_allclose(run(rewritten, x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run(str(path), x), expected, rtol=1e-6, atol=1e-6)


def test_the_real_recogniser_gives_the_same_embeddings_rewritten() -> None:
    recogniser = embedded_pack().recognizer
    rewritten, count = rewrite_prelu(recogniser)
    assert count == 34
    crops = np.random.default_rng(1).uniform(-1, 1, (3, 3, 112, 112)).astype(np.float32)
    original, fast = run(str(recogniser), crops), run(rewritten, crops)
    original /= np.linalg.norm(original, axis=1, keepdims=True)
    fast /= np.linalg.norm(fast, axis=1, keepdims=True)
    assert (original * fast).sum(axis=1).min() > 0.99999


def test_the_landmark_model_gives_the_same_points_rewritten() -> None:
    from adapters.models.registry import Task

    landmarks = embedded_pack().model(Task.LANDMARKS_2D_106).path
    rewritten, count = rewrite_prelu(landmarks)
    assert count == 28
    crops = np.random.default_rng(2).uniform(0, 255, (2, 3, 192, 192)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, crops), run(str(landmarks), crops), atol=1e-5)


def test_the_cache_is_written_once_and_reused(tmp_path: Path) -> None:
    recogniser = embedded_pack().recognizer
    digest = weights_digest(recogniser)
    first = fast_graph(recogniser, digest, tmp_path / "cache")
    assert isinstance(first, Path) and first.is_file() and digest in first.name
    stamp = first.stat().st_mtime_ns
    assert fast_graph(recogniser, digest, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == stamp


def test_the_cache_file_is_readable_by_other_users(tmp_path: Path) -> None:
    # The Docker build fills the cache as root; the service runs as another user and must read it.
    recogniser = embedded_pack().recognizer
    previous = os.umask(0o022)
    try:
        cached = fast_graph(recogniser, weights_digest(recogniser), tmp_path / "cache")
    finally:
        os.umask(previous)
    assert isinstance(cached, Path)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o644


def test_an_unreadable_cache_file_is_rewritten_in_memory(tmp_path: Path) -> None:
    recogniser = embedded_pack().recognizer
    digest = weights_digest(recogniser)
    cached = fast_graph(recogniser, digest, tmp_path / "cache")
    assert isinstance(cached, Path)
    with patch("os.access", return_value=False):  # root reads everything; pretend to be another user
        assert isinstance(fast_graph(recogniser, digest, tmp_path / "cache"), bytes)


def test_without_a_cache_the_graph_stays_in_memory() -> None:
    assert isinstance(fast_graph(embedded_pack().recognizer, "x", None), bytes)


def test_an_unwritable_cache_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    result = fast_graph(embedded_pack().recognizer, "x", blocker / "cache")
    assert isinstance(result, bytes)
