"""Where one request's CPU goes, process by process:
`uv run python -m bench.request_cpu [--photo phone|group] [--requests N]`.

Starts `face-service serve` with one inference worker, sends N photos (bench/workloads.py's variants
of t1.jpg; `phone`: enlarged to 4096x2835) to `/extract-embedding` one at a time, and prints per
request the page faults and the user and kernel CPU time of the serving process and of the worker
(from /proc/<pid>/stat, Linux only), and the latency. Kernel time is what a Python profiler does
not see: page faults, mapping and unmapping memory, pipes.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from pathlib import Path

import httpx

from bench.__main__ import API_KEY, descendants, start_service
from bench.load import multipart
from bench.workloads import GROUP, PHONE_SIDE, variants


def counters(pid: int) -> tuple[int, float, float]:
    """Minor page faults, user and kernel CPU milliseconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[7]), 1000 * int(fields[11]) / tick, 1000 * int(fields[12]) / tick


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cpu", description=__doc__)
    parser.add_argument("--photo", choices=("phone", "group"), default="phone")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    side = PHONE_SIDE if args.photo == "phone" else None
    bodies = [multipart([image]) for image in variants(GROUP, 4, seed=9, side=side)]
    process, base, _ = start_service(
        {"API_KEY": API_KEY, "FACE_BACKEND": "insightface", "LOG_LEVEL": "WARNING", "INFERENCE_WORKERS": "1"}
    )
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:

            def send(index: int) -> float:
                body, content_type = bodies[index % len(bodies)]
                began = time.perf_counter()
                response = client.post("/extract-embedding", content=body, headers={"Content-Type": content_type})
                assert response.status_code == 200, response.text
                return (time.perf_counter() - began) * 1000

            for index in range(2):  # warm up
                send(index)
            pids = descendants(process.pid)
            before = {pid: counters(pid) for pid in pids}
            latencies = [send(index) for index in range(args.requests)]
            after = {pid: counters(pid) for pid in pids}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    print(f"{args.photo} photo, {args.requests} requests one at a time, per request:")
    for pid in pids:
        faults, user, kernel = ((a - b) / args.requests for a, b in zip(after[pid], before[pid], strict=True))
        if user + kernel > 0:
            role = "serving process" if pid == process.pid else f"process {pid}"
            print(f"{role:16} user {user:5.1f} ms, kernel {kernel:4.1f} ms, {faults:6.0f} page faults")
    print(f"latency median {statistics.median(latencies):.1f} ms, best {min(latencies):.1f} ms")


if __name__ == "__main__":
    main()
