"""Run the benchmark: `uv run python -m bench [--requests N] [--concurrency C] [--out FILE]`."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

from adapters.images.decoder import reduction_for
from adapters.models.insightface_backend import detector_input_size
from bench.baseline import Baseline
from bench.load import LoadResult, Request, drive, free_port, multipart
from bench.model_cost import ModelCost
from bench.workloads import GROUP, PHONE_SIDE, SELFIE, Workload, build, variants

API_KEY = "bench-key-0123456789"
HEADLINE = ("selfie", "group", "phone", "batch8")


def descendants(pid: int) -> list[int]:
    """The process and every process below it (the inference workers are children of a forkserver)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += parents.get(current, [])
    return found


def process_tree_memory_mb(pid: int, source: str, field: str) -> float:
    """A memory figure of `field` (kB) in /proc/<pid>/<source>, summed over the process tree, in MB."""
    total = 0
    for one in descendants(pid):
        try:
            lines = Path(f"/proc/{one}/{source}").read_text().splitlines()
        except OSError:  # it ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith(field))
    return total / 1024


def pss_mb(pid: int) -> float:
    """Proportional memory of a process tree: pages shared between processes (the workers are forked
    from one forkserver) counted once in all, as a container's memory limit counts them."""
    return process_tree_memory_mb(pid, "smaps_rollup", "Pss:")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (shared pages counted in each)."""
    return process_tree_memory_mb(pid, "status", "VmRSS:")


def start_service(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `face-service serve` as a user would; return it, its URL, and seconds to the first embedding."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "face-service"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    body, content_type = multipart([SELFIE.read_bytes()])
    began = time.perf_counter()
    # BENCH_SERVICE_LOG=path keeps the service's log (one JSON line per request, with its duration).
    log_path = os.environ.get("BENCH_SERVICE_LOG")
    log = Path(log_path).open("ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the process owns it
    # A gallery of its own for each service started here, unless the caller names one.
    env = {"DATA_DIR": tempfile.mkdtemp(prefix="face-service-bench-"), **env}
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
    while True:
        if process.poll() is not None:
            raise SystemExit("the service exited during start-up")
        try:
            response = httpx.post(
                f"{base}/extract-embedding",
                content=body,
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type},
                timeout=10,
            )
            if response.status_code == 200 and response.json()["face_detected"]:
                return process, base, time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.01)
        if time.perf_counter() - began > 60:
            raise SystemExit("the service did not answer within 60 s")


def http_requests(workload: Workload) -> list[Request]:
    if workload.json_bodies:
        return [Request(workload.path, body, "application/json") for body in workload.json_bodies]
    return [Request(workload.path, *multipart(images)) for images in workload.requests]


def service_embeddings(base: str, image: bytes) -> list[dict[str, object]]:
    body, content_type = multipart([image])
    response = httpx.post(
        f"{base}/extract-embedding?all_faces=true",
        content=body,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type},
        timeout=60,
    )
    return list(response.json().get("faces", []))


def iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def faithfulness(baseline: Baseline, base: str) -> dict[str, float]:
    """Cosine similarity of the service's embedding with the baseline's, face by face."""
    photos = {
        "selfie": SELFIE.read_bytes(),
        "group": GROUP.read_bytes(),
        "phone": variants(GROUP, 1, 99, side=PHONE_SIDE)[0],
    }
    result = {}
    for name, image in photos.items():
        theirs = baseline.faces(image)
        ours = service_embeddings(base, image)
        cosines = []
        for face in theirs:
            match = max(ours, key=lambda o: iou(o["bbox"], face.bbox.tolist()), default=None)  # type: ignore[arg-type]
            if match is None or iou(match["bbox"], face.bbox.tolist()) < 0.5:  # type: ignore[arg-type]
                continue
            mine = np.asarray(match["embedding"], dtype=np.float64)
            cosines.append(float(mine @ face.normed_embedding))
        result[name] = min(cosines) if cosines else float("nan")
        result[f"{name}_faces_matched"] = f"{len(cosines)}/{len(theirs)}"  # type: ignore[assignment]
    return result


def raw_model_ms(cost: ModelCost, det_size: int) -> dict[str, float]:
    """Forward time of what the service runs for one request of each workload."""
    selfie = cv2.imread(str(SELFIE))
    group = cv2.imread(str(GROUP))
    phone_w, phone_h = PHONE_SIDE, round(group.shape[0] * PHONE_SIDE / group.shape[1])
    factor = reduction_for(phone_w, phone_h, det_size)
    selfie_det = cost.detector_ms(*detector_input_size(selfie.shape[1], selfie.shape[0], det_size))
    group_det = cost.detector_ms(*detector_input_size(group.shape[1], group.shape[0], det_size))
    phone_det = cost.detector_ms(*detector_input_size(phone_w // factor, phone_h // factor, det_size))
    return {
        "selfie": selfie_det + cost.recogniser_ms(1),
        "group": group_det + cost.recogniser_ms(6),
        "phone": phone_det + cost.recogniser_ms(6),
        "batch8": 8 * selfie_det + cost.recogniser_ms(8),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=64, help="selfie requests; the others scale from it")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    parser.add_argument("--skip-baseline", action="store_true", help="reuse the baseline figures of --out")
    args = parser.parse_args()
    env = {"API_KEY": API_KEY, "FACE_BACKEND": "insightface", "LOG_LEVEL": "WARNING"}
    env.update(dict(item.split("=", 1) for item in args.env))

    print("preparing workloads ...", flush=True)
    workloads = build(args.requests)

    print("baseline: insightface FaceAnalysis, det_size=(640, 640), in-process, one image at a time ...", flush=True)
    baseline = Baseline()
    if args.skip_baseline:  # for quick experiments only: a reported run measures both in one run
        baseline_rate = json.loads(args.out.read_text())["baseline_images_per_s"]
    else:
        baseline_rate = {name: baseline.throughput(w.requests) for name, w in workloads.items() if w.requests}
        baseline_rate["compare1000"] = Baseline.compare_throughput(workloads["compare1000"].json_bodies[:4])

    print("service: face-service serve ...", flush=True)
    process, base, started = start_service(env)
    try:
        service_rate: dict[str, float] = {}
        single_latency_ms: dict[str, float] = {}
        for name, workload in workloads.items():
            requests = http_requests(workload)
            drive(base, API_KEY, requests[:2], 1)  # warm the connection and the shapes
            result = drive(base, API_KEY, requests, args.concurrency)
            assert set(result.statuses) == {200}, result.statuses
            service_rate[name] = len(requests) * workload.images_per_request / result.seconds
            one_at_a_time = drive(base, API_KEY, requests[: max(4, len(requests) // 4)], 1)
            single_latency_ms[name] = statistics.median(one_at_a_time.latencies) * 1000
        latency: dict[int, LoadResult] = {}
        selfies = http_requests(workloads["selfie"])
        for concurrency in (1, 4, 8):
            latency[concurrency] = drive(base, API_KEY, selfies, concurrency)
        memory = rss_mb(process.pid)
        faithful = faithfulness(baseline, base)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    cost = ModelCost(intra_op_threads=1)
    raw = raw_model_ms(cost, 640)
    ratios = {name: service_rate[name] / baseline_rate[name] for name in service_rate}
    # The models' own floor: every core running model forwards back to back, nothing else.
    floor = {
        name: (os.cpu_count() or 1) * workloads[name].images_per_request * 1000 / raw[name]
        for name in raw
        if name in workloads
    }
    geomean = math.exp(statistics.mean(math.log(ratios[name]) for name in HEADLINE))
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "command": " ".join(["uv run python -m bench", *sys.argv[1:]]),
        "service_env": {k: v for k, v in env.items() if k != "API_KEY"},
        "concurrency": args.concurrency,
        "workloads": {name: w.describe for name, w in workloads.items()},
        "baseline_images_per_s": baseline_rate,
        "service_images_per_s": service_rate,
        "ratio": ratios,
        "geomean_ratio_headline": geomean,
        "single_request_latency_ms": single_latency_ms,
        "raw_model_forward_ms": raw,
        "latency_over_raw": {name: single_latency_ms[name] / raw[name] for name in raw},
        "model_floor_images_per_s": floor,
        "share_of_model_floor": {name: service_rate[name] / floor[name] for name in floor},
        "selfie_latency_ms": {
            c: {"p50": r.percentile(50) * 1000, "p99": r.percentile(99) * 1000} for c, r in latency.items()
        },
        "rss_mb_after_mixed_work": memory,
        "start_to_first_embedding_s": started,
        "cosine_with_baseline_min": faithful,
        "recogniser_batching_speedup_8_faces": cost.batching_speedup(8),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten: {args.out}")
    return 0


def print_table(r: dict) -> None:  # type: ignore[type-arg]
    columns = (
        ("baseline/s", 11),
        ("service/s", 10),
        ("ratio", 6),
        ("1-req ms", 9),
        ("raw ms", 7),
        ("lat/raw", 8),
        ("floor/s", 8),
        ("of floor", 8),
    )
    print("\n" + f"{'workload':<12} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for name in r["service_images_per_s"]:
        raw = r["raw_model_forward_ms"].get(name)
        print(
            f"{name:<12} {r['baseline_images_per_s'][name]:>11.1f} {r['service_images_per_s'][name]:>10.1f} "
            f"{r['ratio'][name]:>5.2f}x {r['single_request_latency_ms'][name]:>9.1f} "
            + (f"{raw:>7.1f} {r['latency_over_raw'][name]:>7.2f}x" if raw else f"{'':>7} {'':>8}")
            + (
                f" {r['model_floor_images_per_s'][name]:>8.1f} {r['share_of_model_floor'][name]:>7.0%}"
                if name in r["model_floor_images_per_s"]
                else ""
            )
        )
    print(f"\ngeometric mean ratio (selfie, group, phone, batch8): {r['geomean_ratio_headline']:.2f}x")
    for c, values in r["selfie_latency_ms"].items():
        print(f"selfie latency at concurrency {c}: p50 {values['p50']:.1f} ms, p99 {values['p99']:.1f} ms")
    print(f"RSS after mixed work: {r['rss_mb_after_mixed_work']:.0f} MB")
    print(f"start to first embedding: {r['start_to_first_embedding_s']:.2f} s")
    print(f"cosine with baseline (min per photo): {r['cosine_with_baseline_min']}")
    print(f"recogniser batching speedup, 8 faces: {r['recogniser_batching_speedup_8_faces']:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
