"""A bounded overload test: many more concurrent group-photo requests than the service has cores.

Run: uv run python -m bench.load_test [--concurrency 16] [--requests 160]
Loopback only, a fixed number of requests; it stops by itself. The test suite runs a smaller one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
from dataclasses import asdict, dataclass

import httpx

from bench.__main__ import API_KEY, http_requests, rss_mb, start_service
from bench.load import drive
from bench.workloads import build


@dataclass
class OverloadReport:
    concurrency: int
    requests: int
    statuses: dict[int, int]
    accepted_p50_s: float
    accepted_max_s: float
    shed_max_s: float
    rss_mb_before: float
    rss_mb_after: float
    serves_after: bool


def overload(base: str, pid: int, concurrency: int, requests: int) -> OverloadReport:
    workload = build(max(16, requests * 2))["group"]
    batch = (http_requests(workload) * (requests // len(workload.requests) + 1))[:requests]
    drive(base, API_KEY, batch[:2], 1)
    before = rss_mb(pid)
    result = drive(base, API_KEY, batch, concurrency)
    after = rss_mb(pid)
    accepted = [lat for lat, status in zip(result.latencies, result.latency_statuses, strict=True) if status == 200]
    shed = [lat for lat, status in zip(result.latencies, result.latency_statuses, strict=True) if status != 200]
    body, content_type = batch[0].body, batch[0].content_type
    check = httpx.post(
        f"{base}{batch[0].path}",
        content=body,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type},
        timeout=60,
    )
    return OverloadReport(
        concurrency=concurrency,
        requests=requests,
        statuses=dict(sorted(result.statuses.items())),
        accepted_p50_s=statistics.median(accepted) if accepted else 0.0,
        accepted_max_s=max(accepted, default=0.0),
        shed_max_s=max(shed, default=0.0),
        rss_mb_before=before,
        rss_mb_after=after,
        serves_after=check.status_code == 200 and check.json()["faces_count"] == 6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_test", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8 * (os.cpu_count() or 1))
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    env = {"API_KEY": API_KEY, "LOG_LEVEL": "WARNING", **dict(item.split("=", 1) for item in args.env)}
    process, base, _ = start_service(env)
    try:
        report = overload(base, process.pid, args.concurrency, args.requests)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    print(json.dumps(asdict(report), indent=2))
    return 0 if report.serves_after and set(report.statuses) <= {200, 429, 503} else 1


if __name__ == "__main__":
    raise SystemExit(main())
