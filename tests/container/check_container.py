"""HTTP checks against the running container, for tests/container/run.sh.

Standard library only (urllib): it talks to the service over HTTP and imports nothing of it, so it
does not care how the service's code is laid out. Not a test module: pytest does not collect it.

    check_container.py wait-healthy BASE TIMEOUT_S CONTAINER   seconds until /health answers 200
    check_container.py api BASE KEY SELFIE GROUP                the endpoints, on real photos
    check_container.py stop-in-flight BASE KEY GROUP CONTAINER  podman stop with a batch in flight
    check_container.py json-lines < LOGS                        every log line is a JSON object

PODMAN_CMD (environment) is the podman command line with its global flags.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PODMAN = shlex.split(os.environ.get("PODMAN_CMD", "podman"))
GROUP_FACES = 6  # t1.jpg
EMBEDDING_SIZE = 512


def ok(message: str) -> None:
    print(f"  ok: {message}", flush=True)


def fail(message: str) -> None:
    raise SystemExit(f"FAILED: {message}")


def request(
    base: str, path: str, *, key: str | None = None, files: list[Path] | None = None, payload: Any = None
) -> tuple[int, dict[str, Any], str]:
    """(status, headers, body) of one request; multipart `file` parts for files, JSON for payload."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for path_ in files:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path_.name}"\r\n'
                "Content-Type: image/jpeg\r\n\r\n".encode()
                + path_.read_bytes()
                + b"\r\n"
            )
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def running(container: str) -> bool:
    state = subprocess.run(
        [*PODMAN, "container", "inspect", "--format", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    return state.stdout.strip() == "true"


def wait_healthy(base: str, timeout_s: float, container: str) -> None:
    """Poll /health; print the seconds from this call until the first 200."""
    began = time.monotonic()
    last_alive_check = began
    while time.monotonic() - began < timeout_s:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as response:
                if response.status == 200:
                    print(f"{time.monotonic() - began:.2f}")
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - last_alive_check > 1:
            last_alive_check = time.monotonic()
            if not running(container):
                fail(f"the container exited before /health answered ({time.monotonic() - began:.1f} s)")
        time.sleep(0.1)
    fail(f"/health did not answer 200 within {timeout_s} s")


def answer(base: str, path: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    """The JSON of a request that must answer 200."""
    status, _, text = request(base, path, key=key, **body)
    if status != 200:
        fail(f"{path}: HTTP {status}, expected 200: {text[:500]}")
    result: dict[str, Any] = json.loads(text)
    return result


def unit_vector(vector: list[float], what: str) -> None:
    if len(vector) != EMBEDDING_SIZE:
        fail(f"{what}: {len(vector)} values, expected {EMBEDDING_SIZE}")
    norm = math.sqrt(sum(value * value for value in vector))
    if abs(norm - 1) > 1e-3:
        fail(f"{what}: norm {norm}, expected 1")


def api(base: str, key: str, selfie: Path, group: Path) -> None:
    health = answer(base, "/health")
    if health.get("status") != "healthy" or health.get("embedding_size") != EMBEDDING_SIZE:
        fail(f"/health: {health}")
    ok(f"/health: healthy, {health.get('model_id')}, providers {health.get('execution_providers')}")

    status, _, body = request(base, "/extract-embedding", files=[selfie])
    if status != 401 or json.loads(body).get("code") != "unauthorized":
        fail(f"no API key: HTTP {status}: {body[:300]}")
    status, _, body = request(base, "/extract-embedding", key="wrong-key-0123456789", files=[selfie])
    if status != 401:
        fail(f"wrong API key: HTTP {status}: {body[:300]}")
    ok("no key and a wrong key: 401 unauthorized")

    single = answer(base, "/extract-embedding", key, files=[selfie])
    if not single.get("face_detected") or not str(single.get("model", "")).startswith("buffalo_s:"):
        fail(f"/extract-embedding {selfie.name}: {str(single)[:300]}")
    unit_vector(single["embedding"], "/extract-embedding")
    ok(f"/extract-embedding {selfie.name}: 512-D unit embedding, model {single['model']}")

    pair = {"embedding_a": single["embedding"], "embedding_b": single["embedding"]}
    compared = answer(base, "/compare-faces", key, payload=pair)
    if not compared.get("match") or abs(compared["similarity"] - 1) > 1e-3:
        fail(f"/compare-faces of an embedding with itself: {compared}")
    ok("/compare-faces: an embedding matches itself (similarity 1)")

    every = answer(base, "/extract-embedding?all_faces=true", key, files=[group])
    faces = every.get("faces") or []
    if every.get("faces_count") != GROUP_FACES or len(faces) != GROUP_FACES:
        fail(f"{group.name}: faces_count {every.get('faces_count')}, {len(faces)} faces, expected {GROUP_FACES}")
    for index, face in enumerate(faces):
        unit_vector(face["embedding"], f"{group.name} face {index}")
    ok(f"/extract-embedding?all_faces=true {group.name}: {GROUP_FACES} faces, each a 512-D unit embedding")

    verified = answer(base, "/verify-face?all_faces=true", key, files=[group])
    if verified.get("faces_count") != GROUP_FACES:
        fail(f"/verify-face {group.name}: {verified.get('faces_count')} faces")
    ok(f"/verify-face?all_faces=true {group.name}: {GROUP_FACES} faces")


def queue_depth(base: str, key: str) -> float:
    status, _, body = request(base, "/metrics", key=key)
    if status != 200:
        fail(f"/metrics: HTTP {status}")
    match = re.search(r"^face_service_queue_depth (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def stop_in_flight(base: str, key: str, group: Path, container: str, copies: int = 12) -> None:
    """A batch of group photos in flight; `podman stop` once it is inside the service; it still completes."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            status, _, body = request(base, "/batch-extract?all_faces=true", key=key, files=[group] * copies)
            outcome["status"], outcome["body"] = status, body
        except OSError as error:
            outcome["error"] = repr(error)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 30
    while queue_depth(base, key) < 1:
        if time.monotonic() > deadline or not caller.is_alive():
            fail(f"the batch never was inside the service: {outcome}")
        time.sleep(0.01)
    began = time.monotonic()
    stopped = subprocess.run([*PODMAN, "stop", "-t", "40", container], capture_output=True, text=True, check=False)
    stop_s = time.monotonic() - began
    caller.join(timeout=60)
    if stopped.returncode != 0:
        fail(f"podman stop: {stopped.stderr.strip()}")
    if outcome.get("status") != 200:
        fail(f"the request in flight at SIGTERM: {str(outcome)[:500]}")
    batch = json.loads(outcome["body"])
    counts = [item.get("faces_count") for item in batch["results"]]
    if batch.get("successful") != copies or counts != [GROUP_FACES] * copies:
        fail(f"the batch in flight at SIGTERM: successful {batch.get('successful')}, faces {counts}")
    ok(f"podman stop with a batch of {copies} photos in flight: it completed (200, {copies}x{GROUP_FACES} faces)")
    if stop_s >= 40:
        fail(f"podman stop took {stop_s:.1f} s: the grace period ran out (SIGKILL)")
    ok(f"the container stopped {stop_s:.1f} s after SIGTERM, within the 40 s grace period")


def json_lines(lines: list[str]) -> None:
    """The service logs JSON lines (docs/observability.md): nothing else may slip into its output."""
    count = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError
        except ValueError:
            fail(f"a log line that is not a JSON object: {line.strip()[:300]!r}")
        count += 1
    ok(f"all {count} log lines are JSON objects")


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "wait-healthy" and len(args) == 3:
        wait_healthy(args[0], float(args[1]), args[2])
    elif command == "api" and len(args) == 4:
        api(args[0], args[1], Path(args[2]), Path(args[3]))
    elif command == "stop-in-flight" and len(args) == 4:
        stop_in_flight(args[0], args[1], Path(args[2]), args[3])
    elif command == "json-lines" and not args:
        json_lines(sys.stdin.readlines())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
