"""adapters/people/neighbours.py: the kNN graph domain/people.py groups faces by, exact and HNSW."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import numpy.typing as npt

from adapters.people.neighbours import FaceScan, FaissNeighbours, exact_neighbours


def face_like(count: int, people: int, seed: int = 5) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, 512))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, people, count)] + 0.9 * rng.standard_normal((count, 512)) / np.sqrt(512)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_the_exact_graph_is_every_faces_k_most_similar_others() -> None:
    vectors = face_like(300, 20)
    graph = FaissNeighbours().neighbours(vectors, 5)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    expected = np.sort(scores, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(graph.similarities, expected, atol=1e-5)
    assert (graph.indices != np.arange(300)[:, None]).all()  # never itself
    np.testing.assert_allclose(np.take_along_axis(scores, graph.indices, axis=1), graph.similarities, atol=1e-5)


def test_the_hnsw_graph_finds_the_close_neighbours_with_exact_similarities() -> None:
    vectors = face_like(6000, 300)
    approximate = FaissNeighbours(exact_faces=1000).neighbours(vectors, 8)
    exact = exact_neighbours(vectors, 8)
    assert (approximate.indices != np.arange(6000)[:, None]).all()
    # The similarities it reports are the faces' exact cosines, most similar first.
    rows = np.arange(6000)[:, None]
    np.testing.assert_allclose(
        approximate.similarities, np.einsum("ijd,id->ij", vectors[approximate.indices], vectors[rows[:, 0]]), atol=1e-4
    )
    assert (np.diff(approximate.similarities, axis=1) <= 1e-6).all()
    # The neighbours a pass links by (same person, cosine >= 0.45) are nearly all found.
    strong = exact.similarities >= 0.45
    found = [
        len(set(exact.indices[i][strong[i]]) & set(approximate.indices[i])) for i in range(6000) if strong[i].any()
    ]
    wanted = int(strong.sum())
    assert sum(found) / wanted > 0.95


def test_tiny_collections() -> None:
    search = FaissNeighbours()
    assert search.neighbours(np.zeros((0, 512), dtype=np.float32), 4).indices.shape == (0, 0)
    one = search.neighbours(face_like(1, 1), 4)
    assert one.indices.shape == (1, 0)
    two = search.neighbours(face_like(2, 1), 4)
    assert two.indices.tolist() == [[1], [0]]


def test_the_incremental_scan_finds_the_exact_nearest_faces() -> None:
    vectors = face_like(20_000, 1000)
    probes = face_like(5, 1000, seed=5)  # the same centres: each has close faces in the collection
    found = FaceScan(vectors).nearest(probes, 16)
    scores = probes @ vectors.T
    expected = np.sort(scores, axis=1)[:, ::-1][:, :16]
    np.testing.assert_allclose(found.similarities, expected, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(scores, found.indices, axis=1), found.similarities, atol=1e-5)
    small = FaceScan(vectors[:10]).nearest(probes[:1], 16)  # fewer faces than k
    assert sorted(small.indices[0].tolist()) == list(range(10))


def test_faiss_and_onnxruntime_import_in_either_order() -> None:
    """usearch, measured for the graph, crashes onnxruntime's import when imported first
    (docs/people.md); the library chosen must not, whatever a process imports first."""
    for first, second in (("faiss", "onnxruntime"), ("onnxruntime", "faiss"), ("numkong", "faiss")):
        done = subprocess.run(
            [sys.executable, "-c", f"import {first}; import {second}; import onnxruntime; print('ok')"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", (first, second, done.stderr[-2000:])
