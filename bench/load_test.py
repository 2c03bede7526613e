"""A bounded overload test: many more concurrent group-photo requests than the service has cores,
while /health is polled: how fast refusals and health checks are answered under overload.

Run: uv run python -m bench.load_test [--concurrency 32] [--requests 320]
Loopback only, a fixed number of requests; it stops by itself. The test suite runs a smaller one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.__main__ import API_KEY, http_requests, rss_mb, start_service
from bench.load import HealthPoller, drive
from bench.workloads import build


@dataclass
class OverloadReport:
    concurrency: int
    requests: int
    statuses: dict[int, int]
    accepted_p50_s: float
    accepted_max_s: float
    shed_max_s: float
    shed_p99_s: float
    health_p50_s: float
    health_p99_s: float
    health_max_s: float
    rss_mb_before: float
    rss_mb_after: float
    serves_after: bool
    # As the service timed them (its access log): the client's figures above also hold the load
    # generator's own waits, on the same 2 cores as the service at full load.
    server_shed_p99_s: float | None = None
    server_shed_max_s: float | None = None


def server_durations(log: Path, status: int, route: str | None = None) -> list[float]:
    """Durations of the answers with `status` (on `route`), from the service's JSON access log."""
    durations = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("status") == status and "duration_ms" in record and route in (None, record.get("route")):
            durations.append(record["duration_ms"] / 1000)
    return durations


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def overload(base: str, pid: int, concurrency: int, requests: int) -> OverloadReport:
    workload = build(32)["group"]  # 32 distinct photos, sent in turn
    batch = (http_requests(workload) * (requests // len(workload.requests) + 1))[:requests]
    drive(base, API_KEY, batch[:2], 1)
    before = rss_mb(pid)
    with HealthPoller(base) as health:
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
        shed_p99_s=percentile(shed, 99),
        health_p50_s=percentile(health.latencies, 50),
        health_p99_s=percentile(health.latencies, 99),
        health_max_s=max(health.latencies, default=0.0),
        rss_mb_before=before,
        rss_mb_after=after,
        serves_after=check.status_code == 200 and check.json()["faces_count"] == 6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_test", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16 * (os.cpu_count() or 1))
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    env = {"API_KEY": API_KEY, "LOG_LEVEL": "INFO", **dict(item.split("=", 1) for item in args.env)}
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "service.log"
        os.environ["BENCH_SERVICE_LOG"] = str(log)
        process, base, _ = start_service(env)
        try:
            report = overload(base, process.pid, args.concurrency, args.requests)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        shed = server_durations(log, 503)
        report.server_shed_p99_s = percentile(shed, 99)
        report.server_shed_max_s = max(shed, default=0.0)
    print(json.dumps(asdict(report), indent=2))
    return 0 if report.serves_after and set(report.statuses) <= {200, 429, 503} else 1


if __name__ == "__main__":
    raise SystemExit(main())
