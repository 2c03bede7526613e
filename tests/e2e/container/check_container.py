"""HTTP checks against the running container, for tests/e2e/container/run.sh and newcomer.sh.

Standard library only (urllib): it talks to the service over HTTP and imports nothing of it, so it
does not care how the service's code is laid out. Not a test module: pytest does not collect it.

    check_container.py wait-healthy BASE TIMEOUT_S CONTAINER   seconds until /health answers 200
    check_container.py api BASE KEY SELFIE GROUP                the endpoints, on real photos
    check_container.py first-embedding BASE KEY SELFIE          /health, and one embedding (newcomer.sh)
    check_container.py stop-in-flight BASE KEY GROUP CONTAINER  podman stop with a batch in flight
    check_container.py json-lines < LOGS                        every log line is a JSON object
    check_container.py collections-enroll BASE KEY SELFIE STORE a collection, a subject enrolled, found again
    check_container.py collections-kept BASE KEY SELFIE STORE   the same collection and subject, in a new container
    check_container.py gallery-locked BASE KEY                  a second process on the SQLite file is kept out

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
COLLECTION = "people"
SUBJECT = "yao"  # yaoming.jpg
SAME_PHOTO = 0.99  # the similarity of a photo's face to the same photo's face enrolled (1 up to rounding)


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


def answer(base: str, path: str, key: str | None = None, expect: int = 200, **body: Any) -> dict[str, Any]:
    """The JSON of a request that must answer `expect` (200)."""
    status, _, text = request(base, path, key=key, **body)
    if status != expect:
        fail(f"{path}: HTTP {status}, expected {expect}: {text[:500]}")
    result: dict[str, Any] = json.loads(text)
    return result


def unit_vector(vector: list[float], what: str) -> None:
    if len(vector) != EMBEDDING_SIZE:
        fail(f"{what}: {len(vector)} values, expected {EMBEDDING_SIZE}")
    norm = math.sqrt(sum(value * value for value in vector))
    if abs(norm - 1) > 1e-3:
        fail(f"{what}: norm {norm}, expected 1")


def api(base: str, key: str, selfie: Path, group: Path) -> None:
    public = answer(base, "/health")
    if public != {"status": "healthy"}:
        fail(f"/health without a key: {public}, expected only the status")
    health = answer(base, "/health", key)
    if health.get("status") != "healthy" or health.get("embedding_size") != EMBEDDING_SIZE:
        fail(f"/health: {health}")
    ok(
        f"/health: healthy without a key (status only); with it {health.get('model_id')}, providers "
        f"{health.get('execution_providers')}"
    )

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


def first_embedding(base: str, key: str, selfie: Path) -> None:
    """What the README's Try it does first: /health, then one face's embedding with the key."""
    health = answer(base, "/health")
    if health.get("status") != "healthy":
        fail(f"/health: {health}")
    single = answer(base, "/extract-embedding", key, files=[selfie])
    if not single.get("face_detected"):
        fail(f"/extract-embedding {selfie.name}: {str(single)[:300]}")
    unit_vector(single["embedding"], "/extract-embedding")
    ok(f"/health healthy; /extract-embedding {selfie.name}: a 512-D unit embedding, model {single.get('model')}")


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


def gallery_health(base: str, key: str, store: str, timeout_s: float = 0.0) -> dict[str, Any]:
    """/health's answer (with the key: the details) once its `gallery` is this store and ok (polled up
    to timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = answer(base, "/health", key)
        gallery = health.get("gallery") or {}
        if gallery.get("store") == store and gallery.get("ok") is True:
            return health
        if time.monotonic() >= deadline:
            fail(f"/health: gallery {gallery}, expected store {store!r} and ok")
        time.sleep(0.2)


def search_finds_subject(base: str, key: str, selfie: Path, face_id: str) -> float:
    """Search the collection with the photo: one query face, matched to the subject's face; its similarity."""
    found = answer(base, f"/collections/{COLLECTION}/search", key, files=[selfie])
    results = found.get("results") or []
    if len(results) != 1 or found.get("searched_faces", 0) < 1:
        fail(f"search with {selfie.name}: {str(found)[:500]}")
    decision, matches = results[0]["decision"], results[0]["matches"]
    if not decision.get("match") or decision.get("external_id") != SUBJECT or decision["similarity"] < SAME_PHOTO:
        fail(f"search with {selfie.name}: decision {decision}, expected a match with {SUBJECT!r}")
    if not matches or matches[0].get("external_id") != SUBJECT or matches[0].get("face_id") != face_id:
        fail(f"search with {selfie.name}: matches {matches}, expected {SUBJECT!r} with face {face_id}")
    return float(decision["similarity"])


def collections_enroll(base: str, key: str, selfie: Path, store: str) -> None:
    """A new collection, the photo enrolled under SUBJECT (again: the same face, duplicate), a search
    that finds the subject, and /health listing the collection with its model."""
    health = gallery_health(base, key, store)
    ok(f"/health: gallery store {store}, ok ({health['gallery'].get('detail')})")
    model = health["model_id"]
    created = answer(base, "/collections", key, expect=201, payload={"name": COLLECTION})
    if created.get("name") != COLLECTION or created.get("model") != model or created.get("faces") != 0:
        fail(f"POST /collections: {created}")
    ok(f"POST /collections: 201, {COLLECTION!r} pinned to {model}")
    enroll = f"/collections/{COLLECTION}/subjects/{SUBJECT}/faces"
    enrolled = answer(base, enroll, key, expect=201, files=[selfie])
    if enrolled.get("external_id") != SUBJECT or enrolled.get("duplicate") is not False or not enrolled.get("face_id"):
        fail(f"enroll {selfie.name}: {enrolled}")
    again = answer(base, enroll, key, expect=200, files=[selfie])
    if again.get("duplicate") is not True or again.get("face_id") != enrolled["face_id"]:
        fail(f"enroll {selfie.name} again: {again}, expected the face already enrolled (duplicate)")
    ok(f"enroll {selfie.name} as {SUBJECT!r}: 201; the same photo again: 200, duplicate, the same face")
    similarity = search_finds_subject(base, key, selfie, enrolled["face_id"])
    ok(f"search with {selfie.name}: match {SUBJECT!r}, similarity {similarity}")
    listed = gallery_health(base, key, store)["gallery"].get("collections")
    if {"name": COLLECTION, "model": model} not in (listed or []):
        fail(f"/health gallery.collections: {listed}, expected {COLLECTION!r} with model {model}")
    ok(f"/health lists {COLLECTION!r} with its model")


def collections_kept(base: str, key: str, selfie: Path, store: str) -> None:
    """What collections_enroll left is all there: the collection, its subject with one face, a search
    that finds it."""
    gallery_health(base, key, store, timeout_s=10)
    ok(f"/health: gallery store {store}, ok")
    collection = answer(base, f"/collections/{COLLECTION}", key)
    if collection.get("subjects") != 1 or collection.get("faces") != 1:
        fail(f"GET /collections/{COLLECTION}: {collection}, expected 1 subject and 1 face")
    subject = answer(base, f"/collections/{COLLECTION}/subjects/{SUBJECT}", key)
    faces = subject.get("faces") or []
    if subject.get("faces_count") != 1 or len(faces) != 1:
        fail(f"GET subject {SUBJECT!r}: {subject}")
    ok(f"collection {COLLECTION!r} (1 subject, 1 face) and subject {SUBJECT!r} are there")
    similarity = search_finds_subject(base, key, selfie, faces[0]["face_id"])
    ok(f"search with {selfie.name}: match {SUBJECT!r} (face {faces[0]['face_id']}), similarity {similarity}")


def gallery_locked(base: str, key: str) -> None:
    """A second service on the same SQLite file: healthy for faces, its gallery refused (the store's lock)."""
    gallery = answer(base, "/health", key).get("gallery") or {}
    if (
        gallery.get("store") != "sqlite"
        or gallery.get("ok") is not False
        or "another process" not in str(gallery.get("detail"))
        or "/data" in str(gallery.get("detail"))  # the file's path is never shown, only DATA_DIR
    ):
        fail(f"/health of a second container on the volume: gallery {gallery}, expected not ok (in use)")
    ok(f"/health: 200, gallery {gallery.get('store')}, not ok: {gallery.get('detail')}")
    status, _, body = request(base, "/collections", key=key)
    if status != 503 or json.loads(body).get("code") != "store_unavailable":
        fail(f"GET /collections: HTTP {status}: {body[:300]}, expected 503 store_unavailable")
    ok("GET /collections: 503 store_unavailable")


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "wait-healthy" and len(args) == 3:
        wait_healthy(args[0], float(args[1]), args[2])
    elif command == "first-embedding" and len(args) == 3:
        first_embedding(args[0], args[1], Path(args[2]))
    elif command == "api" and len(args) == 4:
        api(args[0], args[1], Path(args[2]), Path(args[3]))
    elif command == "stop-in-flight" and len(args) == 4:
        stop_in_flight(args[0], args[1], Path(args[2]), args[3])
    elif command == "json-lines" and not args:
        json_lines(sys.stdin.readlines())
    elif command == "collections-enroll" and len(args) == 4:
        collections_enroll(args[0], args[1], Path(args[2]), args[3])
    elif command == "collections-kept" and len(args) == 4:
        collections_kept(args[0], args[1], Path(args[2]), args[3])
    elif command == "gallery-locked" and len(args) == 2:
        gallery_locked(args[0], args[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
