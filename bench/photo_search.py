"""Photo search benchmark (issue 21): "find every photo I am in" at 10k/100k/1M photo faces.

    uv run python -m bench.photo_search [--sizes 10000,100000,1000000] [--stores sqlite,postgresql]

The faces are bench/search.py's face-like synthetic ones (5 faces per person, same-person cosine
~0.6), unlabelled, grouped into photos of `--faces-per-photo` faces: a person's 5 faces land in 5
different photos. A probe is a new face of a random person; its truth is computed here by brute
force: every photo whose best face reaches `--min-similarity`, ranked. Per store and size: the load
(`add_faces` in blocks, each block's photos whole; PostgreSQL's index built after), single
`add_photo` calls (one durable transaction each, as the route makes them) in photos/s, and photo
search latency p50/p99 (top_k 100) with agreement: the photo ids of the first page and `count`
against the truth. PostgreSQL is measured exact (a scan) and approximate (HNSW, strict-order
iterative scan). Writes bench/results/photo_search.json (git-ignored) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from adapters.stores.postgres.gallery import PostgresGallery
from adapters.stores.sqlite import SqliteGallery
from bench.search import MODEL, Faces, limits, percentile, postgres
from domain.gallery import FaceRecord, PhotoInfo

RESULTS = Path(__file__).parent / "results" / "photo_search.json"


def photo_blocks(data: Faces, faces_per_photo: int, created_at: datetime) -> Any:
    """Each block of faces as unlabelled photo faces, its photos whole (one block, one transaction)."""
    for block, (faces, _) in enumerate(data.blocks()):
        order = np.random.default_rng((5, block)).permutation(len(faces))
        photos = block * (len(faces) // faces_per_photo + 1) + order // faces_per_photo
        digests = {int(p): uuid.uuid4().hex * 2 for p in np.unique(photos)}
        yield (
            [
                FaceRecord(
                    uuid.uuid4().hex,
                    None,
                    vector,
                    (0.0, 0.0, 100.0, 100.0),
                    0.9,
                    digests[int(p)],
                    created_at,
                    photo_id=f"photo-{int(p):09d}",
                )
                for vector, p in zip(faces, photos, strict=True)
            ],
            photos,
        )


def truth(data: Faces, faces_per_photo: int, probes: np.ndarray, floor: float) -> list[list[str]]:
    """Per probe, the photos whose best face reaches `floor`, best first (then by id)."""
    best: list[dict[str, float]] = [{} for _ in probes]
    for block, (faces, _) in enumerate(data.blocks()):
        order = np.random.default_rng((5, block)).permutation(len(faces))
        photos = block * (len(faces) // faces_per_photo + 1) + order // faces_per_photo
        scores = (faces.astype(np.float64) @ probes.astype(np.float64).T).T
        for j, row in enumerate(scores):
            for i in np.flatnonzero(row >= floor - 1e-6):
                key = f"photo-{int(photos[i]):09d}"
                best[j][key] = max(best[j].get(key, -2.0), float(row[i]))
    return [[k for k, s in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])) if s >= floor] for found in best]


def search_times(gallery: Any, probes: np.ndarray, floor: float, expected: list[list[str]]) -> dict[str, Any]:
    for probe in probes[:5]:  # warm up
        gallery.search_photos("bench", probe, floor, 100, None)
    times, same_page, same_count, recall, method = [], 0, 0, [], ""
    for probe, wanted in zip(probes, expected, strict=True):
        began = time.perf_counter()
        outcome = gallery.search_photos("bench", probe, floor, 100, None)
        times.append((time.perf_counter() - began) * 1000)
        got = [hit.photo_id for hit in outcome.hits]
        same_page += got == wanted[:100]
        same_count += outcome.count == len(wanted)
        recall.append(len(set(got) & set(wanted[:100])) / max(1, len(wanted[:100])))
        method = outcome.method
    return {
        "method": method,
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "identical_first_page": f"{same_page}/{len(probes)}",
        "identical_count": f"{same_count}/{len(probes)}",
        "recall_first_page": round(float(np.mean(recall)), 4),
        "photos_per_probe": round(float(np.mean([len(w) for w in expected])), 1),
    }


def single_photos(gallery: Any, data: Faces, count: int, faces_per_photo: int) -> float:
    rng = np.random.default_rng(11)
    now = datetime.now(UTC)
    began = time.perf_counter()
    for i in range(count):
        vectors = rng.standard_normal((faces_per_photo, data.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        digest = uuid.uuid4().hex * 2
        photo_id = f"single-{i}"
        faces = [
            FaceRecord(uuid.uuid4().hex, None, v, (0.0, 0.0, 1.0, 1.0), 0.9, digest, now, photo_id=photo_id)
            for v in vectors
        ]
        gallery.add_photo("bench", PhotoInfo(photo_id, digest, len(faces), now), faces)
    return count / (time.perf_counter() - began)


def load(gallery: Any, data: Faces, faces_per_photo: int) -> float:
    now = datetime.now(UTC)
    elapsed = 0.0
    for batch, _ in photo_blocks(data, faces_per_photo, now):
        began = time.perf_counter()
        gallery.add_faces("bench", batch)
        elapsed += time.perf_counter() - began
    return data.size / elapsed


def bench_sqlite(
    data: Faces, probes: np.ndarray, expected: list[list[str]], args: argparse.Namespace
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-photos-", dir=args.tmp))
    try:
        gallery = SqliteGallery(folder / "faces.sqlite3", limits(data.size * 2))
        gallery.create_collection("bench", MODEL, data.dimension, 0.3)
        rate = load(gallery, data, args.faces_per_photo)
        gallery._collections["bench"].by_photo.wait_coded()
        result = {"load_faces_per_s": round(rate), **search_times(gallery, probes, args.min_similarity, expected)}
        result["add_photo_per_s"] = round(single_photos(gallery, data, args.single_adds, args.faces_per_photo), 1)
        gallery.close()
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_postgres(
    url: str, data: Faces, probes: np.ndarray, expected: list[list[str]], args: argparse.Namespace
) -> dict[str, Any]:
    database = create_database_url(url, f"photos_{data.size}_{uuid.uuid4().hex[:6]}")
    approximate = PostgresGallery(database, limits(data.size * 2))
    exact = PostgresGallery(database, limits(data.size * 2), exact_below=10**12)
    try:
        approximate.create_collection("bench", MODEL, data.dimension, 0.3)
        approximate.drop_index("bench")
        rate = load(approximate, data, args.faces_per_photo)
        began = time.perf_counter()
        memory = f"{max(64, data.size * data.dimension * 4 * 3 // 2**20)}MB"
        approximate.build_index("bench", maintenance_work_mem=memory)
        build = time.perf_counter() - began
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        exact_probes = probes[: args.exact_queries]
        return {
            "load_faces_per_s": round(rate),
            "index_build_s": round(build, 1),
            "exact": search_times(exact, exact_probes, args.min_similarity, expected[: len(exact_probes)]),
            "approximate": search_times(approximate, probes, args.min_similarity, expected),
            "add_photo_per_s": round(single_photos(approximate, data, args.single_adds, args.faces_per_photo), 1),
        }
    finally:
        approximate.close()
        exact.close()


def create_database_url(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--faces-per-photo", type=int, default=4)
    parser.add_argument("--min-similarity", type=float, default=0.4)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exact-queries", type=int, default=30, help="PostgreSQL exact searches per size")
    parser.add_argument("--single-adds", type=int, default=100)
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--shared-buffers", default="4GB", help="for the pgserver instance started here")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stores = args.stores.split(",")
    results: dict[str, Any] = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "faces_per_photo": args.faces_per_photo,
        "min_similarity": args.min_similarity,
        "sizes": {},
    }
    with postgres(args) if "postgresql" in stores else contextlib.nullcontext("") as url:
        for size in (int(s) for s in args.sizes.split(",")):
            data = Faces(size, args.dimension, 5)
            probes, _ = data.probes(args.queries)
            expected = truth(data, args.faces_per_photo, probes, args.min_similarity)
            entry: dict[str, Any] = {}
            if "sqlite" in stores:
                entry["sqlite"] = bench_sqlite(data, probes, expected, args)
            if "postgresql" in stores:
                entry["postgresql"] = bench_postgres(url, data, probes, expected, args)
            results["sizes"][str(size)] = entry
            print(json.dumps({str(size): entry}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
