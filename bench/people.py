"""People, the evidence: how well domain/people.py groups faces into people, against the candidates,
and what it costs at 100k faces.

    uv run python -m bench.people [--out bench/results/people.json] [--faces 100000] [--skip-real]

Real photos (the five bundled ones, bench/quality.py's): every face of at least 36 pixels in the
clean photos, then the same photos blurred, made smaller and JPEG-compressed (bench/quality.py's
degradations, each copy a photo of its own), and two crops around each face (a photo of its own
too). Every face found is matched to the clean face it is (by where it is), so each person's copies
should end up as one person. Two clean faces are one person only for Yao Ming (yaoming.jpg and his
face in players.jpg: the most similar pair, as bench/quality.py finds it). For each candidate:
pairwise precision and recall over the faces at or above the quality floor, and how many groups hold
two faces of one photo.

Synthetic, for the cost: identities as random unit centres sharing a common direction (strangers
about 0.0-0.3 apart), 5% of them a sibling of another (centres 0.6 apart), each face its centre
plus noise (same person about 0.3-0.75), sizes long-tailed, faces grouped into photos of 1-5
people. Timed: the kNN graph (HNSW), the pass, sklearn's HDBSCAN on the same graph, and the
incremental add of one photo's faces (an exact scan of every face, then the rule).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adapters.people.neighbours import FaceScan, FaissNeighbours, exact_neighbours
from domain.model import BoundingBox, Image
from domain.people import UNASSIGNED, Candidate, ClusteringRules, Constraints, Neighbours, assign_photo, cluster
from domain.quality import DEFAULT_RULES as QUALITY_RULES
from domain.quality import QualityLevel, assess

RESULTS = Path(__file__).parent / "results" / "people.json"


# ----- The real photos


@dataclass
class Seen:
    vector: npt.NDArray[np.float32]
    photo: str  # the (possibly degraded) photo it was found in
    identity: str  # the clean face it is: "photo#index"
    variant: str
    level: QualityLevel


def real_faces() -> list[Seen]:
    from bench.quality import MIN_FACE, Bench, anchors, blur, downscale, jpeg

    bench = Bench()
    clean = bench.clean_faces()
    _, (a, b) = anchors(clean, bench.settings.match_threshold)
    identity = {(f.photo, f.index): f"{f.photo}#{f.index}" for f in clean}
    identity[(clean[b].photo, clean[b].index)] = identity[(clean[a].photo, clean[a].index)]  # Yao Ming, twice

    def seen_in(pixels: np.ndarray, photo: str, variant: str, placed: list[tuple[Any, BoundingBox]]) -> list[Seen]:
        """The faces found in `pixels` that are one of `placed` (a clean face and where it is now)."""
        image = Image(pixels)
        found = bench.detector.detect(image)
        out = []
        for face in found:
            cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
            for origin, box in placed:
                side = min(box.x2 - box.x1, box.y2 - box.y1)
                if abs((box.x1 + box.x2) / 2 - cx) < 0.4 * side and abs((box.y1 + box.y2) / 2 - cy) < 0.4 * side:
                    crops = bench.embedder.align(image, [face])
                    vector = bench.embedder.embed_aligned(crops)[0]
                    quality = assess(bench.meter.measure(image, [face], crops)[0], QUALITY_RULES)
                    out.append(Seen(vector, photo, identity[(origin.photo, origin.index)], variant, quality.level))
                    break
        return out

    faces: list[Seen] = []
    for name, pixels in bench.images.items():
        of_photo = [f for f in clean if f.photo == name]
        if not of_photo:
            continue
        largest = max(of_photo, key=lambda f: f.detected.box.x2 - f.detected.box.x1).detected.box
        variants: list[tuple[str, np.ndarray]] = [("clean", pixels)]
        variants += [(f"blur {sigma}", blur(pixels, sigma, largest)) for sigma in (1.5, 2.5, 3.5)]
        variants += [(f"jpeg {q}", jpeg(pixels, q, largest)) for q in (30, 15, 8)]
        variants += [(f"smaller {side}", downscale(pixels, side, largest)) for side in (80, 56, 40)]
        for variant, image in variants:
            scale = image.shape[1] / pixels.shape[1]
            placed = [
                (
                    f,
                    BoundingBox(
                        f.detected.box.x1 * scale,
                        f.detected.box.y1 * scale,
                        f.detected.box.x2 * scale,
                        f.detected.box.y2 * scale,
                    ),
                )
                for f in clean
                if f.photo == name
            ]
            faces += seen_in(image, f"{name} {variant}", variant, placed)
        for face in of_photo:  # crops: the face with a margin of half, then a whole, side around it
            box = face.detected.box
            for margin in (0.5, 1.0):
                side = max(box.x2 - box.x1, box.y2 - box.y1)
                x1, y1 = max(0, int(box.x1 - margin * side)), max(0, int(box.y1 - margin * side))
                x2 = min(pixels.shape[1], int(box.x2 + margin * side))
                y2 = min(pixels.shape[0], int(box.y2 + margin * side))
                crop = np.ascontiguousarray(pixels[y1:y2, x1:x2])
                placed = [
                    (
                        f,
                        BoundingBox(
                            f.detected.box.x1 - x1,
                            f.detected.box.y1 - y1,
                            f.detected.box.x2 - x1,
                            f.detected.box.y2 - y1,
                        ),
                    )
                    for f in clean
                    if f.photo == name
                ]
                faces += seen_in(crop, f"{name} crop {face.index} {margin}", f"crop {margin}", placed)
    assert all(
        min(f.detected.box.x2 - f.detected.box.x1, f.detected.box.y2 - f.detected.box.y1) >= MIN_FACE for f in clean
    )
    return faces


# ----- Scoring a grouping


def pairwise(labels: npt.NDArray[np.int64], truth: list[str], photos: list[str]) -> dict[str, Any]:
    """Pairwise precision and recall (an unassigned face is alone), groups holding two faces of one
    photo, and into how many groups each person fell."""
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label if label != UNASSIGNED else -(i + 2), []).append(i)
    predicted = true_positive = 0
    mixed_photos = 0
    for members in groups.values():
        predicted += len(members) * (len(members) - 1) // 2
        counts = Counter(truth[i] for i in members)
        true_positive += sum(c * (c - 1) // 2 for c in counts.values())
        mixed_photos += len({photos[i] for i in members}) < len(members)
    actual = sum(c * (c - 1) // 2 for c in Counter(truth).values())
    split: Counter[str] = Counter()
    for label, members in groups.items():
        for person in {truth[i] for i in members}:
            split[person] += label >= 0
    seen_twice = [person for person, faces in Counter(truth).items() if faces >= 2]
    return {
        "precision": round(true_positive / predicted, 4) if predicted else 1.0,
        "recall": round(true_positive / actual, 4) if actual else 1.0,
        "groups": sum(1 for label in groups if label >= 0),
        "unassigned": int((labels == UNASSIGNED).sum()),
        "groups_with_two_faces_of_one_photo": mixed_photos,
        "people_seen_twice": len(seen_twice),
        "of_them_in_one_group": sum(1 for person in seen_twice if split[person] == 1),
    }


def codes(values: list[str]) -> npt.NDArray[np.int64]:
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(v, len(numbers)) for v in values], dtype=np.int64)


def ours(vectors: np.ndarray, photos: list[str], rules: ClusteringRules, graph: Neighbours | None = None) -> Any:
    graph = graph or exact_neighbours(vectors, rules.neighbours)
    constraints = Constraints(photos=codes(photos), anchors=np.full(len(photos), -1, dtype=np.int64))
    return cluster(graph, constraints, rules)


def candidates_on_real(faces: list[Seen], floor: QualityLevel) -> dict[str, Any]:
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering

    kept = [f for f in faces if f.level.at_least(floor)]
    vectors = np.array([f.vector for f in kept], dtype=np.float32)
    truth, photos = [f.identity for f in kept], [f.photo for f in kept]
    out: dict[str, Any] = {"faces": len(kept), "skipped_below_floor": len(faces) - len(kept), "candidates": {}}
    table = out["candidates"]
    for min_samples in (1, 2, 3):
        for link in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55):
            rules = ClusteringRules(link, min_samples, min_size=2, neighbours=16, join_votes=2)
            table[f"ours min_samples={min_samples} link={link}"] = pairwise(ours(vectors, photos, rules), truth, photos)
    distances = np.clip(1 - vectors @ vectors.T, 0, 2).astype(np.float64)
    for min_samples in (1, 2, 3):
        labels = HDBSCAN(min_cluster_size=2, min_samples=min_samples, metric="precomputed", copy=True).fit_predict(
            distances
        )
        table[f"sklearn HDBSCAN min_samples={min_samples}"] = pairwise(labels, truth, photos)
    for link in (0.3, 0.4, 0.5):
        labels = AgglomerativeClustering(
            n_clusters=None, metric="precomputed", linkage="average", distance_threshold=1 - link
        ).fit_predict(distances)
        table[f"sklearn average linkage similarity>={link}"] = pairwise(labels, truth, photos)
    return out


def incremental_on_real(faces: list[Seen], floor: QualityLevel, rules: ClusteringRules) -> dict[str, Any]:
    """A pass over the clean photos and the crops, then every degraded photo's faces added one photo at
    a time by `assign` (their neighbours among the faces so far, exactly): joined right, joined wrong
    (a face given to another person), or waiting."""
    kept = [f for f in faces if f.level.at_least(floor)]
    base = [f for f in kept if f.variant == "clean" or f.variant.startswith("crop")]
    later = [f for f in kept if not (f.variant == "clean" or f.variant.startswith("crop"))]
    vectors = np.array([f.vector for f in base], dtype=np.float32)
    labels = ours(vectors, [f.photo for f in base], rules)
    person_of = {}  # identity -> the person most of its faces got
    for identity in {f.identity for f in base}:
        got = Counter(int(labels[i]) for i, f in enumerate(base) if f.identity == identity and labels[i] >= 0)
        if got:
            person_of[identity] = got.most_common(1)[0][0]
    right = wrong = waiting = 0
    for photo in sorted({f.photo for f in later}):
        arrivals = [f for f in later if f.photo == photo]
        found = []
        for face in arrivals:
            scores = vectors @ face.vector
            best = np.argsort(-scores)[: rules.neighbours]
            found.append([Candidate(float(scores[j]), int(labels[j])) for j in best])
        for face, person in zip(arrivals, assign_photo(found, [()] * len(arrivals), rules), strict=True):
            if person == UNASSIGNED:
                waiting += 1
            elif person_of.get(face.identity) == person:
                right += 1
            else:
                wrong += 1
    return {
        "base_faces": len(base),
        "added_faces": len(later),
        "joined_right": right,
        "joined_wrong": wrong,
        "waiting": waiting,
    }


# ----- Synthetic faces at scale


def synthetic(
    count: int, seed: int = 7
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """`count` face-like unit vectors, each face's identity and photo."""
    rng = np.random.default_rng(seed)
    dimension = 512
    sizes = np.minimum(rng.zipf(1.6, size=count), 500)  # long tail: most people seen a few times
    sizes = sizes[np.cumsum(sizes) <= count]
    sizes = np.append(sizes, np.ones(count - sizes.sum(), dtype=sizes.dtype))
    people = len(sizes)
    common = rng.standard_normal(dimension)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((people, dimension)) / np.sqrt(dimension) + 0.35 * common
    siblings = rng.random(people) < 0.05
    siblings[0] = False
    centres[siblings] = centres[np.flatnonzero(siblings) - 1] + 1.3 * rng.standard_normal(
        (int(siblings.sum()), dimension)
    ) / np.sqrt(dimension)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    identity = np.repeat(np.arange(people), sizes)
    noise = rng.uniform(0.6, 1.1, count)
    hard = rng.random(count) < 0.1
    noise[hard] = rng.uniform(1.1, 1.6, int(hard.sum()))  # profile, age, blur: the hard tenth
    vectors = centres[identity] + noise[:, None] * rng.standard_normal((count, dimension)) / np.sqrt(dimension)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    order = rng.permutation(count)
    vectors, identity = vectors[order], identity[order]
    # Photos of 1-5 faces: consecutive faces (in a random order), so one photo rarely holds one person twice.
    photo_sizes = rng.integers(1, 6, size=count)
    photo = np.repeat(np.arange(count), photo_sizes)[:count]
    return vectors, identity.astype(np.int64), photo.astype(np.int64)


def knn_recall(vectors: np.ndarray, graph: Neighbours, sample: np.ndarray, link: float) -> dict[str, float]:
    """Of the exact k nearest neighbours of the sampled faces: the share the graph found, all of them
    and those at or above the link similarity (the ones a pass can use)."""
    scores = vectors[sample] @ vectors.T
    scores[np.arange(len(sample)), sample] = -np.inf
    k = graph.indices.shape[1]
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    found = linked = wanted_links = 0
    for i, face in enumerate(sample):
        got = set(graph.indices[face].tolist())
        found += len(set(best[i].tolist()) & got)
        strong = {int(j) for j in best[i] if scores[i, j] >= link}
        wanted_links += len(strong)
        linked += len(strong & got)
    return {
        "top_k": round(found / (k * len(sample)), 4),
        "at_or_above_link": round(linked / wanted_links, 4) if wanted_links else 1.0,
    }


def cost(count: int, rules: ClusteringRules, with_hdbscan: bool) -> dict[str, Any]:
    vectors, identity, photo = synthetic(count)
    rng = np.random.default_rng(1)
    sample = rng.choice(count, 1000, replace=False)
    pairs = vectors[sample] @ vectors.T
    same = identity[sample][:, None] == identity[None, :]
    same[np.arange(1000), sample] = False
    out: dict[str, Any] = {
        "faces": count,
        "people": len(np.unique(identity)),
        "same_person_cosine_p5_p50_p95": [round(float(v), 3) for v in np.percentile(pairs[same], [5, 50, 95])],
        "strangers_cosine_p50_p99_p99.99": [round(float(v), 3) for v in np.percentile(pairs[~same], [50, 99, 99.99])],
    }
    del pairs, same
    began = time.perf_counter()
    graph = FaissNeighbours().neighbours(vectors, rules.neighbours)
    out["knn_graph_s"] = round(time.perf_counter() - began, 2)
    out["knn_recall_vs_exact"] = knn_recall(vectors, graph, sample[:200], rules.link_similarity)
    began = time.perf_counter()
    constraints = Constraints(photos=photo, anchors=np.full(count, -1, dtype=np.int64))
    labels = cluster(graph, constraints, rules)
    out["pass_s"] = round(time.perf_counter() - began, 2)
    out["total_s"] = round(out["knn_graph_s"] + out["pass_s"], 2)
    truth, photos = [str(v) for v in identity.tolist()], [str(v) for v in photo.tolist()]
    out["ours"] = pairwise(labels, truth, photos)
    if with_hdbscan:
        from scipy.sparse import csr_matrix
        from sklearn.cluster import HDBSCAN

        began = time.perf_counter()
        rows = np.repeat(np.arange(count), graph.indices.shape[1])
        distances = np.maximum(1e-6, 1 - graph.similarities.reshape(-1)).astype(np.float64)
        sparse = csr_matrix((distances, (rows, graph.indices.reshape(-1))), shape=(count, count))
        sparse = sparse.maximum(sparse.T)
        try:
            hdb = HDBSCAN(
                min_cluster_size=2, min_samples=rules.min_samples, metric="precomputed", copy=True
            ).fit_predict(sparse)
            out["sklearn_hdbscan_on_the_graph_s"] = round(time.perf_counter() - began, 2)
            out["sklearn_hdbscan_on_the_graph"] = pairwise(hdb.astype(np.int64), truth, photos)
        except Exception as error:
            out["sklearn_hdbscan_on_the_graph"] = f"failed: {type(error).__name__}: {error}"
    out["incremental"] = incremental(vectors, labels, photo, rules)
    return out


def incremental(
    vectors: np.ndarray, labels: np.ndarray, photo: np.ndarray, rules: ClusteringRules, photos: int = 200
) -> dict[str, Any]:
    """Adding one photo's faces: a scan of every face's int8 copy for all of them at once, the best
    re-scored exactly (adapters/people/neighbours.py `FaceScan`), their neighbours' people, then the
    rule. Photos drawn from the set, scanned as if new."""
    rng = np.random.default_rng(3)
    scan = FaceScan(vectors)  # what a collection would keep beside its faces
    timings: list[float] = []
    float32_timings: list[float] = []
    joined = waited = 0
    starts = np.flatnonzero(np.r_[True, photo[1:] != photo[:-1]])
    for start in rng.choice(starts, photos, replace=False):
        end = start
        while end + 1 < len(photo) and photo[end + 1] == photo[start]:
            end += 1
        members = np.arange(start, end + 1)
        began = time.perf_counter()
        nearest = scan.nearest(vectors[members], rules.neighbours + len(members))
        found = [
            [
                Candidate(float(similarity), int(labels[j]))
                for j, similarity in zip(nearest.indices[row], nearest.similarities[row], strict=True)
                if j not in members  # the photo's own faces are not in the collection yet
            ][: rules.neighbours]
            for row in range(len(members))
        ]
        people = assign_photo(found, [()] * len(members), rules)
        joined += sum(person != UNASSIGNED for person in people)
        waited += sum(person == UNASSIGNED for person in people)
        timings.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()  # the same neighbours by a float32 scan, for the ratio
        scores = vectors[members] @ vectors.T
        np.argpartition(-scores, rules.neighbours, axis=1)
        float32_timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    return {
        "photos": photos,
        "faces_joined": joined,
        "faces_waiting": waited,
        "ms_per_photo_p50": round(statistics.median(timings), 2),
        "ms_per_photo_p99": round(timings[int(0.99 * len(timings)) - 1], 2),
        "float32_scan_alone_ms_p50": round(statistics.median(float32_timings), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-hdbscan", action="store_true", help="skip sklearn's HDBSCAN at scale")
    args = parser.parse_args()
    from domain.people import DEFAULT_RULES

    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(),
        },
        "rules": {**DEFAULT_RULES.__dict__, "min_quality": DEFAULT_RULES.min_quality.value},
    }
    if not args.skip_real:
        faces = real_faces()
        report["real"] = {
            "faces_found": len(faces),
            "by_level": dict(Counter(f.level.value for f in faces)),
            **{f"floor {floor.value}": candidates_on_real(faces, floor) for floor in QualityLevel},
            "incremental": {
                f"floor {floor.value}": incremental_on_real(faces, floor, DEFAULT_RULES) for floor in QualityLevel
            },
        }
        print(json.dumps(report["real"], indent=1), flush=True)
    report["scale"] = cost(args.faces, DEFAULT_RULES, with_hdbscan=not args.skip_hdbscan)
    print(json.dumps(report["scale"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
