"""Peak memory of the whole service (every process) under the worst batches the limits allow.

Run: uv run python -m bench.memory_test [--images 32] [--concurrent 2]
Sends `--concurrent` batches at once of `--images` grey 40-megapixel PNGs (each decodes to 119 MB of
8-bit BGR) to `face-service serve` on loopback, sampling the resident memory of the service's
process tree every 50 ms. Loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

import cv2
import httpx
import numpy as np

from bench.__main__ import API_KEY, pss_mb, rss_mb, start_service
from bench.load import multipart


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_test", description=__doc__)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    side = 6300  # 39.7 MP, inside MAX_IMAGE_PIXELS
    png = cv2.imencode(".png", np.full((side, side), 128, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    body, content_type = multipart([png] * args.images)
    env = {"API_KEY": API_KEY, "LOG_LEVEL": "WARNING", **dict(item.split("=", 1) for item in args.env)}
    process, base, _ = start_service(env)
    try:
        idle, idle_pss = rss_mb(process.pid), pss_mb(process.pid)
        peak, peak_pss = [idle], [idle_pss]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(rss_mb(process.pid))
                peak_pss.append(pss_mb(process.pid))
                time.sleep(0.05)

        statuses: list[int] = []

        def send() -> None:
            response = httpx.post(
                f"{base}/batch-extract",
                content=body,
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": content_type},
                timeout=600,
            )
            statuses.append(response.status_code)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.perf_counter()
        senders = [threading.Thread(target=send) for _ in range(args.concurrent)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        seconds = time.perf_counter() - began
        done.set()
        sampler.join()
        after = rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    report = {
        "batches": args.concurrent,
        "images_per_batch": args.images,
        "upload_mb_per_batch": round(len(body) / 1e6, 2),
        "statuses": statuses,
        "seconds": round(seconds, 1),
        "rss_mb_idle": round(idle),
        "rss_mb_peak": round(max(peak)),
        "rss_mb_after": round(after),
        "pss_mb_idle": round(idle_pss),
        "pss_mb_peak": round(max(peak_pss)),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
