"""A corpus of hostile imports, on SQLite and on PostgreSQL: each gets its exact status, code and line,
leaves nothing behind (an import is all or nothing), and the service serves on. Then what needs a
real server: a trickled body is cut, a huge line is refused as it arrives while /health answers, and
a service killed mid-import comes back without any of it."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from bench.__main__ import API_KEY, rss_mb, start_service
from bench.load import HealthPoller
from tests.support.pg import PostgresServer, create_database
from tests.support.services import make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/x-ndjson"}
MODEL = "fake:00000000"  # the fake backend's model: 512 values
STORES = ["sqlite", "postgresql"]


def store_env(store: str, request: pytest.FixtureRequest, folder: Path) -> dict[str, str]:
    if store == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"imports_{request.node.name[-20:].strip('[]-')}_{id(folder) % 100000}")
        return {"GALLERY_STORE": store, "DATABASE_URL": url}
    return {"GALLERY_STORE": store, "DATA_DIR": str(folder / "data")}


def header(**changes: Any) -> bytes:
    line = {"type": "collection", "name": "source", "model": MODEL, "dimension": 512, "threshold": 0.4, "format": 1}
    return json.dumps({**line, **changes}).encode() + b"\n"


def vector_base64(values: np.ndarray) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def unit(seed: int) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(512)
    return values / np.linalg.norm(values)


def face(seed: int, **changes: Any) -> bytes:
    line = {
        "type": "face",
        "external_id": f"s{seed // 10}",  # ten faces a subject, under MAX_FACES_PER_SUBJECT
        "embedding": vector_base64(unit(seed)),
        "source_digest": f"{seed:064x}",
        "created_at": "2026-01-01T00:00:00Z",
        "bbox": [1.0, 2.0, 30.5, 40.25],
        "confidence": 0.9,
    }
    return json.dumps({**line, **changes}).encode() + b"\n"


NAN_VECTOR = unit(1)
NAN_VECTOR[7] = np.nan
GOOD = header() + face(1) + face(2)

# (id, body, status, code, line the error names)
CORPUS: list[tuple[str, bytes, int, str, int | None]] = [
    ("negative dimension", header(dimension=-5) + face(1), 400, "invalid_import", 1),
    ("zero dimension", header(dimension=0) + face(1), 400, "invalid_import", 1),
    ("dimension 3 for a 512 model", header(dimension=3) + face(1), 400, "invalid_import", 1),
    ("huge dimension", header(dimension=100_000_000) + face(1), 400, "invalid_import", 1),
    ("dimension not whole", header(dimension=512.5) + face(1), 400, "invalid_import", 1),
    ("dimension as text", header(dimension="512") + face(1), 400, "invalid_import", 1),
    ("threshold 99", header(threshold=99) + face(1), 400, "invalid_import", 1),
    (
        "threshold out of float range",
        GOOD.replace(b'"threshold": 0.4', b'"threshold": 1e400'),
        400,
        "invalid_import",
        1,
    ),
    ("empty model", header(model="") + face(1), 400, "invalid_import", 1),
    ("model with a newline", header(model=MODEL + "\n") + face(1), 400, "invalid_import", 1),
    ("bad base64", header() + face(1, embedding="!!!not base64!!!"), 400, "invalid_import", 2),
    ("three values", header() + face(1, embedding=vector_base64(np.ones(3))), 400, "invalid_import", 2),
    ("seven bytes", header() + face(1, embedding=base64.b64encode(b"1234567").decode()), 400, "invalid_import", 2),
    ("NaN in the vector", header() + face(1, embedding=vector_base64(NAN_VECTOR)), 400, "invalid_import", 2),
    ("zero vector", header() + face(1, embedding=vector_base64(np.zeros(512))), 400, "invalid_import", 2),
    ("external id ..", header() + face(1, external_id=".."), 400, "invalid_import", 2),
    ("external id with a newline", header() + face(1, external_id="ann\n"), 400, "invalid_import", 2),
    ("digest not hex", header() + face(1, source_digest="x" * 64), 400, "invalid_import", 2),
    ("digest a megabyte", header() + face(1, source_digest="a" * 60_000), 400, "invalid_import", 2),
    ("box of three", header() + face(1, bbox=[1, 2, 3]), 400, "invalid_import", 2),
    ("confidence 7", header() + face(1, confidence=7), 400, "invalid_import", 2),
    ("no timestamp", header() + face(1, created_at="yesterday"), 400, "invalid_import", 2),
    ("face before the header", face(1) + header(), 400, "invalid_import", 1),
    ("not JSON", b"hello\n" + face(1), 400, "invalid_import", 1),
    ("JSON nested deep", b"[" * 50_000 + b"\n", 400, "invalid_import", 1),
    ("empty body", b"", 400, "invalid_import", None),
    ("blank lines only", b"\n\n  \n", 400, "invalid_import", None),
    ("blank lines are counted", b"\n" + header() + b"\n" + face(1) + b"x\n", 400, "invalid_import", 5),
    (
        "a bad line after 600 good ones",
        header() + b"".join(face(i) for i in range(600)) + face(600, embedding="bad"),
        400,
        "invalid_import",
        602,
    ),
    ("bad first face line", header() + face(0, external_id="") + face(1), 400, "invalid_import", 2),
    ("a 5 MB line", header() + b'{"type": "face", "external_id": "' + b"a" * 5_000_000, 413, "import_line_too_long", 2),
    ("no newline, 10 MB", b"x" * 10_000_000, 413, "import_line_too_long", 1),
]


@pytest.fixture(scope="module", params=STORES)
def importing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    env = store_env(request.param, request, tmp_path_factory.mktemp("imports"))
    with make_client(settings_for("fake", API_KEY=API_KEY, **env)) as client:
        assert client.post("/collections/kept/import", headers=HEADERS, content=GOOD).status_code == 200
        yield client


def names(client: Client) -> list[str]:
    return [c["name"] for c in client.get("/collections", headers=HEADERS).json()["collections"]]


@pytest.mark.parametrize(("case", "body", "status", "code", "line"), CORPUS, ids=[case[0] for case in CORPUS])
def test_hostile_import(importing: Client, case: str, body: bytes, status: int, code: str, line: int | None) -> None:
    client = importing
    name = "new-" + str(abs(hash(case)) % 10**8)
    for target in (name, "kept"):  # a collection it would create, and one that exists
        answer = client.post(f"/collections/{target}/import", headers=HEADERS, content=body)
        assert (answer.status_code, answer.json()["code"], answer.json().get("line")) == (status, code, line), (
            answer.text
        )
        assert "Nothing of this import was kept" in answer.json()["error"]
        assert set(answer.json()) <= {"error", "code", "line", "field", "request_id"}
    assert names(client) == ["kept"]  # no collection created, not even an empty one
    kept = client.get("/collections/kept", headers=HEADERS).json()
    assert (kept["subjects"], kept["faces"], kept["threshold"]) == (1, 2, 0.4)
    # ...and the service imports on.
    assert client.post(f"/collections/{name}/import", headers=HEADERS, content=GOOD).json()["imported"] == 2
    assert client.delete(f"/collections/{name}", headers=HEADERS).status_code == 204


def test_imports_that_are_fine(importing: Client) -> None:
    client = importing
    last_line_without_newline = header() + face(1) + face(2).rstrip(b"\n")
    answer = client.post("/collections/fine/import", headers=HEADERS, content=last_line_without_newline)
    assert answer.json() == {"collection": "fine", "imported": 2}
    again = header() + b"\r\n" + face(1) + face(3)  # blank lines are skipped; face 1 is there already
    assert client.post("/collections/fine/import", headers=HEADERS, content=again).json()["imported"] == 1
    mismatch = client.post("/collections/fine/import", headers=HEADERS, content=header(model="other:12345678"))
    assert (mismatch.status_code, mismatch.json()["code"]) == (409, "model_mismatch")
    other = header(model="other:12345678", dimension=128) + face(1, embedding=vector_base64(np.ones(128)))
    assert client.post("/collections/other/import", headers=HEADERS, content=other).json()["imported"] == 1
    assert client.get("/collections/other", headers=HEADERS).json()["dimension"] == 128
    newline_name = client.post("/collections/fine%0A/import", headers=HEADERS, content=GOOD)
    assert (newline_name.status_code, newline_name.json()["code"]) == (400, "invalid_collection_name")
    for name in ("fine", "other"):
        client.delete(f"/collections/{name}", headers=HEADERS)


def test_an_import_past_a_limit_keeps_nothing(tmp_path: Path) -> None:
    env = {"GALLERY_STORE": "sqlite", "DATA_DIR": str(tmp_path / "data"), "MAX_FACES_PER_COLLECTION": "100"}
    with make_client(settings_for("fake", API_KEY=API_KEY, **env)) as client:
        body = header() + b"".join(face(i) for i in range(150))
        answer = client.post("/collections/c/import", headers=HEADERS, content=body)
        assert (answer.status_code, answer.json()["code"]) == (409, "collection_face_limit")
        assert "Nothing of this import was kept" in answer.json()["error"]
        assert names(client) == []


def test_the_cli_imports_all_or_nothing(tmp_path: Path) -> None:
    env = {"API_KEY": API_KEY, "FACE_BACKEND": "fake", "GALLERY_STORE": "sqlite", "DATA_DIR": str(tmp_path / "data")}
    command = [str(Path(sys.executable).parent / "face-service")]
    bad, good = tmp_path / "bad.jsonl", tmp_path / "good.jsonl"
    bad.write_bytes(header() + b"".join(face(i) for i in range(600)) + face(600, embedding="bad"))
    good.write_bytes(header() + b"".join(face(i) for i in range(600)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)

    refused = run("import", "c", str(bad))
    assert refused.returncode != 0 and "line 602" in refused.stdout + refused.stderr
    assert run("collections", "list").stdout.strip() == ""
    imported = run("import", "c", str(good))
    assert imported.returncode == 0 and json.loads(imported.stdout) == {"collection": "c", "imported": 600}


# --- against `face-service serve`: bodies that arrive slowly, never end, or are cut by a crash


@pytest.fixture(scope="module", params=STORES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """A service with a short body deadline: 2 s for each 1 MB of an import."""
    env = {
        "API_KEY": API_KEY,
        "FACE_BACKEND": "fake",
        "INFERENCE_WORKERS": "1",
        "BODY_TIMEOUT_SECONDS": "2",
        "MAX_REQUEST_BYTES": "1000000",
        **store_env(request.param, request, tmp_path_factory.mktemp("served")),
    }
    process, base, _ = start_service(env)
    try:
        yield process, base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def chunked_import(base: str, name: str) -> socket.socket:
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /collections/{name}/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    return sock


def send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def read_response(sock: socket.socket) -> bytes:
    """One answer on a connection kept open: its head, then as many bytes as its content-length."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_trickled_import_is_cut_and_its_connection_closed(served: tuple[Any, str]) -> None:
    _, base = served
    sock = chunked_import(base, "trickle")
    sock.settimeout(10)
    began = time.monotonic()
    body = header() + b"".join(face(i) for i in range(50))
    try:
        for start in range(0, len(body), 16):  # 16 bytes every 0.2 s: forever, at that pace
            send_chunk(sock, body[start : start + 16])
            time.sleep(0.2)
            if time.monotonic() - began > 8:
                break
    except OSError:
        pass  # the server closed the connection: what should happen
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b'"code":"body_timeout"' in answer, answer[:300]
    assert time.monotonic() - began < 6  # BODY_TIMEOUT_SECONDS=2 for this first megabyte
    assert httpx.get(f"{base}/collections/trickle", headers=HEADERS, timeout=10).status_code == 404


def test_a_large_import_may_take_longer_than_the_deadline_at_a_sane_pace(served: tuple[Any, str]) -> None:
    """The deadline grows with the body: 2 s for each megabyte, so 3 MB sent over 2.4 s arrive."""
    _, base = served
    body = header() + b"".join(face(i) for i in range(1_000))  # 3.1 MB
    sock = chunked_import(base, "paced")
    sock.settimeout(30)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_response(sock)))
    reader.start()  # reading all along: an early refusal would be seen, not lost to a reset
    step = len(body) // 6 + 1
    with contextlib.suppress(OSError):  # a refusal closes the connection: its answer says why
        for start in range(0, len(body), step):
            send_chunk(sock, body[start : start + step])
            time.sleep(0.4)
        sock.sendall(b"0\r\n\r\n")
    reader.join(timeout=60)
    sock.close()
    answer = b"".join(received)
    assert answer.startswith(b"HTTP/1.1 200") and b'"imported":1000' in answer, answer[-400:]
    httpx.delete(f"{base}/collections/paced", headers=HEADERS, timeout=30)


def test_a_300_mb_line_is_refused_as_it_arrives_while_health_answers(served: tuple[Any, str]) -> None:
    """The line is refused once it passes MAX_IMPORT_LINE_BYTES, the connection closed; the service
    never holds it, nor spends the event loop on it."""
    process, base = served
    before = rss_mb(process.pid)
    sock = chunked_import(base, "huge")
    sock.settimeout(30)
    answers: list[bytes] = []

    def read() -> None:  # while the body is still being sent, as a client that reads early does
        with contextlib.suppress(ConnectionResetError):  # the close may come as a reset: after the answer
            while chunk := sock.recv(65536):
                answers.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    piece = b"a" * (1 << 20)
    with HealthPoller(base) as health:
        try:
            send_chunk(sock, header() + b'{"type": "face", "external_id": "')
            while sent < 300 << 20:
                send_chunk(sock, piece)
                sent += len(piece)
        except OSError:
            pass  # refused and closed long before 300 MB
        reader.join(timeout=30)
        sock.close()
        time.sleep(0.3)  # and right after
    answer = b"".join(answers)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"code":"import_line_too_long"' in answer and b"connection: close" in answer.lower()
    assert sent < 32 << 20, sent  # a line's limit, a feed and the sockets' buffers: never the whole line
    assert rss_mb(process.pid) - before < 100
    assert len(health.latencies) >= 3 and set(health.statuses) == {200}
    assert max(health.latencies) < 1.0, health.latencies  # the event loop never held the line


def test_health_answers_while_a_large_import_is_staged_and_stored(served: tuple[Any, str]) -> None:
    _, base = served
    body = header() + b"".join(face(i) for i in range(6_000))  # 19 MB, 6,000 faces
    with HealthPoller(base) as health:
        answer = httpx.post(f"{base}/collections/large/import", headers=HEADERS, content=body, timeout=120)
    assert answer.json() == {"collection": "large", "imported": 6_000}
    assert len(health.latencies) >= 5 and set(health.statuses) == {200}
    assert float(np.percentile(health.latencies, 99)) < 1.0, health.latencies
    httpx.delete(f"{base}/collections/large", headers=HEADERS, timeout=30)


@pytest.mark.parametrize("store", STORES)
def test_a_service_killed_mid_import_keeps_none_of_it(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGKILL while two imports are half sent (one would create a collection, one adds to an
    existing one): after a restart, neither left anything, and nothing is quarantined."""
    env = {"API_KEY": API_KEY, "FACE_BACKEND": "fake", "INFERENCE_WORKERS": "1", **store_env(store, request, tmp_path)}
    process, base, _ = start_service(env)
    try:
        kept = header() + face(1)
        assert (
            httpx.post(f"{base}/collections/kept/import", headers=HEADERS, content=kept, timeout=30).status_code == 200
        )
        sockets = [chunked_import(base, name) for name in ("fresh", "kept")]
        for sock in sockets:
            send_chunk(sock, header() + b"".join(face(i) for i in range(2, 2_002)))
        time.sleep(1.0)  # staged by now: 2,000 faces checked and waiting for the rest of the body
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    restarted, base, _ = start_service(env)
    try:
        listed = httpx.get(f"{base}/collections", headers=HEADERS, timeout=30).json()["collections"]
        assert [(c["name"], c["faces"]) for c in listed] == [("kept", 1)]
        assert httpx.get(f"{base}/health", headers=HEADERS, timeout=30).json()["gallery"]["quarantined"] == []
        if store == "sqlite":  # no staging file left behind (they are unlinked as they are made)
            assert sorted(p.name for p in Path(env["DATA_DIR"]).iterdir() if "import" in p.name) == []
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
        for sock in sockets:
            sock.close()
