"""A bounded HTTP load driver: a fixed list of requests, a fixed number in flight, loopback only."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import httpx


def free_port() -> int:
    """A port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HealthPoller:
    """Polls /health every 20 ms on its own thread while a `with` block runs: the latencies (and the
    statuses) of a load balancer's health checks during that block."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                began = time.perf_counter()
                self.statuses.append(client.get(f"{self.base}/health").status_code)
                self.latencies.append(time.perf_counter() - began)
                time.sleep(0.02)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Request:
    path: str
    body: bytes
    content_type: str


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]
    latency_statuses: list[int]  # the status of each entry of `latencies`

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def multipart(images: list[bytes]) -> tuple[bytes, str]:
    """Encode once, up front, so the client spends no CPU on it during the run."""
    boundary = uuid.uuid4().hex
    parts = []
    for index, image in enumerate(images):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{index}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
        )
        parts.append(image)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def _drive(base: str, api_key: str, requests: list[Request], concurrency: int) -> LoadResult:
    headers = {"Authorization": f"Bearer {api_key}"}
    latencies: list[float] = []
    latency_statuses: list[int] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for request in queue:
                began = time.perf_counter()
                response = await client.post(
                    request.path, content=request.body, headers={"Content-Type": request.content_type}
                )
                await response.aread()
                latencies.append(time.perf_counter() - began)
                latency_statuses.append(response.status_code)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return LoadResult(seconds, latencies, statuses, latency_statuses)


def drive(base: str, api_key: str, requests: list[Request], concurrency: int) -> LoadResult:
    return asyncio.run(_drive(base, api_key, requests, concurrency))
