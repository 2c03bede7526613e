"""Photo ingest through the CLI against the models' floor, in one run:
`uv run python -m bench.photos [--group N] [--phone N] [--concurrency C ...] [--rounds R] [--out FILE]`.

- The floor: this process runs what indexing a photo costs in models, with nothing around it: the
  same photos decoded, every face detected, aligned, embedded and assessed (`FaceService.extract`,
  all faces), on as many threads as the service has inference workers (INFERENCE_WORKERS), back to
  back. No HTTP, no store, no CLI.
- The CLI: `face-service photos index COLLECTION FOLDER --url ... --concurrency C --json` into a
  `face-service serve` started here (SQLite in a fresh DATA_DIR, the same INFERENCE_WORKERS); its
  photos/s is the one its summary reports (first photo read to last answer: the process start and
  the listing of the collection are left out, and printed apart as the wall time).

Each workload's photos are different JPEGs (bench/workloads.py's variants: brightness, contrast,
JPEG quality), so no cache flatters a figure. The ratio CLI / floor is the figure (the goal: 85%),
taken in rounds (the floor, then the CLI at once): the median over the rounds is reported. 64 group
and 48 phone photos by default: a run of a few seconds is mostly the steady pace a folder of
hundreds is indexed at; with 12 phone photos (under a second) filling and draining the pipeline
weighed a few points (docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.__main__ import API_KEY, start_service
from bench.workloads import GROUP, PHONE_SIDE, variants

if TYPE_CHECKING:
    from domain.use_cases.faces import FaceService

COLLECTION = "bench-photos"


def write_photos(folder: Path, photos: list[bytes]) -> None:
    folder.mkdir(parents=True)
    for index, data in enumerate(photos):
        (folder / f"img_{index:04d}.jpg").write_bytes(data)


def in_process_service() -> FaceService:
    from app.bootstrap import bootstrap
    from app.settings import Settings

    settings = dataclasses.replace(Settings.from_env({**os.environ, "API_KEY": API_KEY}), inference_isolation="thread")
    return bootstrap(settings).service()


def floor_photos_per_s(service: FaceService, photos: list[bytes], workers: int) -> tuple[float, int]:
    """Photos per second (and faces found) of the models alone, on `workers` threads."""
    service.extract(photos[0], all_faces=True)  # warm: shapes, allocations
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda data: service.extract(data, all_faces=True), photos[:workers]))
        began = time.perf_counter()
        faces = sum(
            len(extraction.faces) for extraction in pool.map(lambda d: service.extract(d, all_faces=True), photos)
        )
        seconds = time.perf_counter() - began
    return len(photos) / seconds, faces


def cli_run(url: str, folder: Path, concurrency: int) -> dict[str, Any]:
    """One `photos index` run into a fresh collection: its summary, and the process's wall time."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    httpx.delete(f"{url}/collections/{COLLECTION}", headers=headers, timeout=60)
    created = httpx.post(f"{url}/collections", json={"name": COLLECTION}, headers=headers, timeout=60)
    created.raise_for_status()
    command = [str(Path(sys.executable).parent / "face-service"), "photos", "index", COLLECTION, str(folder)]
    command += ["--url", url, "--concurrency", str(concurrency), "--quality", "none", "--json"]
    began = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=1800, env={**os.environ, "FACE_SERVICE_API_KEY": API_KEY}
    )
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"photos index failed ({result.returncode}): {result.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])["summary"]
    return {**summary, "wall_s": round(wall, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photos", description=__doc__)
    parser.add_argument("--group", type=int, default=64, help="group photos (t1.jpg, 1280x886, 6 faces)")
    parser.add_argument("--phone", type=int, default=48, help="phone photos (t1.jpg at 4096x2835, 6 faces)")
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        default=[],
        help="CLI concurrency to try (default: 1 and 2 x workers)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of floor then CLI runs; the median ratio counts")
    parser.add_argument("--workers", type=int, default=None, help="INFERENCE_WORKERS (default: the service's own)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/photos.json"))
    args = parser.parse_args()
    from app.settings import Settings

    workers = args.workers or Settings.from_env({"API_KEY": API_KEY}).inference_workers
    concurrencies = args.concurrency or [workers, 2 * workers]
    workloads = {
        name: photos
        for name, photos in (
            ("group", variants(GROUP, args.group, seed=11)),
            ("phone", variants(GROUP, args.phone, seed=12, side=PHONE_SIDE)),
        )
        if photos  # --group 0 or --phone 0: that workload is left out
    }
    root = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    for name, photos in workloads.items():
        write_photos(root / name, photos)

    service = in_process_service()
    env = {"API_KEY": API_KEY, "LOG_LEVEL": "WARNING", "INFERENCE_WORKERS": str(workers)}
    process, url, _ = start_service(env)
    # Each round measures the floor and then the CLI right after it, so that a slower spell of a shared
    # machine weighs on both sides of a ratio; the median ratio over the rounds is the figure.
    floor: dict[str, list[float]] = {name: [] for name in workloads}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {c: [] for c in concurrencies} for name in workloads}
    try:
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds} ...", flush=True)
            for name, photos in workloads.items():
                rate, faces = floor_photos_per_s(service, photos, workers)
                floor[name].append(rate)
                for concurrency in concurrencies:
                    run = cli_run(url, root / name, concurrency)
                    assert run["faces"] == faces, (
                        f"{name}: the CLI indexed {run['faces']} faces, the floor found {faces}"
                    )
                    runs[name][concurrency].append({**run, "share_of_floor": round(run["photos_per_s"] / rate, 3)})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    median = statistics.median
    report = {
        "command": " ".join(["uv run python -m bench.photos", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "inference_workers": workers,
        "photos": {name: len(photos) for name, photos in workloads.items()},
        "floor_photos_per_s": floor,
        "cli": {name: {str(c): rounds for c, rounds in by_c.items()} for name, by_c in runs.items()},
        "median_share_of_floor": {
            name: {str(c): median(r["share_of_floor"] for r in rounds) for c, rounds in by_c.items()}
            for name, by_c in runs.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\n{'workload':<8} {'photos':>6} {'floor/s':>8} " + " ".join(f"{'c=' + str(c):>16}" for c in concurrencies))
    for name in workloads:
        shares = report["median_share_of_floor"][name]
        rates = {c: median(r["photos_per_s"] for r in runs[name][c]) for c in concurrencies}
        cells = [f"{rates[c]:>7.2f} ({shares[str(c)]:>4.0%})" for c in concurrencies]
        print(
            f"{name:<8} {len(workloads[name]):>6} {median(floor[name]):>8.2f} "
            + " ".join(f"{cell:>16}" for cell in cells)
        )
    print(
        f"\nmedians of {args.rounds} rounds: photos/s of the CLI (median share of the floor); every run in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
