"""Each face's nearest faces, for domain/people.py: exact below `EXACT_FACES`, faiss's HNSW above.

Below `EXACT_FACES` faces every pair is scored (numpy, `BLOCK_ROWS` rows at a time, so memory stays
bounded). Above it an exact scan is quadratic (100k faces: 10^10 products of 512 values, minutes on
two cores), so the graph comes from faiss's HNSW index over the float32 vectors: the similarities it
reports are exact inner products, only the neighbours may be missed. bench/people.py measured its
recall and cost at 100k faces (docs/people.md), and why not usearch (its import before
onnxruntime's crashes the process).
"""

from __future__ import annotations

import os

import faiss
import numkong
import numpy as np
import numpy.typing as npt

from adapters.stores.matrix import quantize
from domain.people import Neighbours

EXACT_FACES = 8192  # up to this many faces the graph is exact
BLOCK_ROWS = 1024  # rows scored at a time by the exact scan
LINKS = 16  # HNSW: links per node (M)
EXPANSION_ADD = 40  # HNSW: candidates kept while inserting (efConstruction)
EXPANSION_SEARCH = 48  # HNSW: candidates kept while searching (efSearch)


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


class FaissNeighbours:
    """The `NeighbourSearch` port: exact for small collections, HNSW for large ones."""

    def __init__(self, exact_faces: int = EXACT_FACES, threads: int | None = None) -> None:
        self.exact_faces = exact_faces
        self.threads = threads or _threads()

    def neighbours(self, vectors: npt.NDArray[np.float32], k: int) -> Neighbours:
        """The k nearest other faces of every row of `vectors` (L2-normalised), most similar first."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count = len(vectors)
        k = min(k, max(count - 1, 0))
        if k == 0:
            return Neighbours(np.full((count, 0), -1, dtype=np.int64), np.zeros((count, 0), dtype=np.float32))
        if count <= self.exact_faces:
            return exact_neighbours(vectors, k)
        return self._approximate(vectors, k)

    def _approximate(self, vectors: npt.NDArray[np.float32], k: int) -> Neighbours:
        faiss.omp_set_num_threads(self.threads)
        index = faiss.IndexHNSWFlat(vectors.shape[1], LINKS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EXPANSION_ADD
        index.add(vectors)
        index.hnsw.efSearch = max(EXPANSION_SEARCH, k + 1)
        similarities, indices = index.search(vectors, k + 1)
        indices = indices.astype(np.int64)
        drop = indices == np.arange(len(vectors))[:, None]  # itself
        similarities = np.where(drop | (indices < 0), -np.inf, similarities).astype(np.float32)
        order = np.argsort(-similarities, axis=1, kind="stable")[:, :k]  # itself and missing ones last
        indices = np.take_along_axis(indices, order, axis=1)
        similarities = np.take_along_axis(similarities, order, axis=1)
        missing = ~np.isfinite(similarities)
        indices[missing], similarities[missing] = -1, -1.0
        return Neighbours(indices, similarities)


def exact_neighbours(vectors: npt.NDArray[np.float32], k: int) -> Neighbours:
    """Every pair scored, `BLOCK_ROWS` rows at a time."""
    count = len(vectors)
    indices = np.empty((count, k), dtype=np.int64)
    similarities = np.empty((count, k), dtype=np.float32)
    for lo in range(0, count, BLOCK_ROWS):
        scores = vectors[lo : lo + BLOCK_ROWS] @ vectors.T
        rows = np.arange(len(scores))
        scores[rows, lo + rows] = -np.inf  # not its own neighbour
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        indices[lo : lo + len(scores)] = np.take_along_axis(best, order, axis=1)
        similarities[lo : lo + len(scores)] = np.take_along_axis(best_scores, order, axis=1)
    return Neighbours(indices, similarities)


class FaceScan:
    """The nearest faces of a few new ones (one photo's), for the incremental rule: a scan of every
    face's int8 copy (numkong, as the embedded galleries scan; a quarter of float32's bytes, and the
    scan is bound by memory bandwidth), then the `RERANK` best of each scored exactly in float32.

    The int8 estimate is within a few thousandths of the cosine, so the k best (k much smaller than
    `RERANK`) are the exact k best unless dozens of faces tie within that error."""

    RERANK = 64

    def __init__(self, vectors: npt.NDArray[np.float32]) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        compact = quantize(self.vectors)
        self.codes, self.scales = compact.codes, compact.scales

    def nearest(self, probes: npt.NDArray[np.float32], k: int) -> Neighbours:
        probes = np.ascontiguousarray(probes, dtype=np.float32)
        count = len(self.vectors)
        k = min(k, count)
        if k == 0:
            return Neighbours(np.full((len(probes), 0), -1, dtype=np.int64), np.zeros((len(probes), 0), np.float32))
        coded = quantize(probes)
        dots = np.asarray(numkong.dots_packed(self.codes, numkong.dots_pack(coded.codes)), dtype=np.float32)
        estimates = dots.T * self.scales[None, :] * coded.scales[:, None]
        wanted = min(self.RERANK, count)
        candidates = (
            np.argpartition(-estimates, wanted - 1, axis=1)[:, :wanted]
            if wanted < count
            else (np.tile(np.arange(count), (len(probes), 1)))
        )
        exact = np.einsum("ijd,id->ij", self.vectors[candidates], probes)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return Neighbours(
            np.take_along_axis(candidates, order, axis=1).astype(np.int64),
            np.take_along_axis(exact, order, axis=1).astype(np.float32),
        )
