"""Where a photo's CPU goes when the CLI indexes photos into a local service:
`uv run python -m bench.photos_cpu [--photos N] [--concurrency C] [--phone]`.

Starts `face-service serve` (SQLite, a fresh DATA_DIR), runs `face-service photos index` over N group
photos (bench/workloads.py's variants of t1.jpg; with `--phone`, enlarged to a phone photo's 4096x2835),
and prints the user and kernel CPU seconds of the
serving process and each of its workers (from /proc/<pid>/stat, Linux only) and of the CLI, per photo.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.__main__ import API_KEY, start_service
from bench.photos import cli_run, write_photos
from bench.workloads import GROUP, PHONE_SIDE, variants


def process_tree(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children += process_tree(int(entry))
    return [pid, *children]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, kernel) CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.photos_cpu", description=__doc__)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--phone", action="store_true", help="phone-sized photos (11.6 MP)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-photos-cpu-")) / ("phone" if args.phone else "group")
    write_photos(folder, variants(GROUP, args.photos, seed=11, side=PHONE_SIDE if args.phone else None))
    process, url, _ = start_service({"API_KEY": API_KEY, "INFERENCE_WORKERS": "2"})
    try:
        pids = process_tree(process.pid)
        before = {pid: cpu_seconds(pid) for pid in pids}
        cli_before = os.times()
        summary = cli_run(url, folder, args.concurrency)
        cli_after = os.times()
        for pid in pids:
            user, kernel = (a - b for a, b in zip(cpu_seconds(pid), before[pid], strict=True))
            if user + kernel > 0:
                role = "serving process" if pid == process.pid else f"worker {pid}"
                print(
                    f"{role:18} user {1000 * user / args.photos:6.1f} ms/photo,"
                    f" kernel {1000 * kernel / args.photos:5.1f}"
                )
        cli = (
            cli_after.children_user + cli_after.children_system - cli_before.children_user - cli_before.children_system
        )
        print(
            f"{'CLI (with start)':18} {1000 * cli / args.photos:6.1f} ms/photo; {summary.get('photos_per_s')} photos/s"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
