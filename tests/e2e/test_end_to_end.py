"""`face-service serve` started as a process and called over loopback, as a user would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.load import free_port
from tests.support.photos import GROUP_PHOTO, SELFIE, b64
from tests.support.services import API_KEY

pytestmark = pytest.mark.real_model
COMMAND = shutil.which("face-service", path=str(Path(sys.executable).parent)) or "face-service"


def start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_KEYS", "FACE_BACKEND", "MODEL_DIR")}
    full_env["DATA_DIR"] = tempfile.mkdtemp(prefix="face-service-e2e-")  # never the repository's ./data
    full_env.update(env)
    return subprocess.Popen(
        [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(process: subprocess.Popen[str], base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy in time")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


def stopped_cleanly(code: int, output: str) -> bool:
    # uvicorn finishes in-flight requests, runs the shutdown, then re-raises SIGTERM to exit with it.
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in output


@pytest.fixture(scope="module")
def real_server() -> Iterator[str]:
    port = free_port()
    process = start({"API_KEY": API_KEY}, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, base)
        yield base
    finally:
        code, output = stop(process)
        assert stopped_cleanly(code, output), output


def test_serves_the_real_models_over_loopback(real_server: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    health = httpx.get(f"{real_server}/health", headers=headers).json()
    assert health["model_pack"] == "buffalo_s"
    with GROUP_PHOTO.open("rb") as photo:
        verify = httpx.post(f"{real_server}/verify-face", headers=headers, files={"file": photo}, timeout=30).json()
    assert verify["face_detected"] is True and verify["faces_count"] == 6
    extract = httpx.post(
        f"{real_server}/extract-embedding", headers=headers, json={"image_base64": b64(SELFIE)}, timeout=30
    ).json()
    assert len(extract["embedding"]) == 512
    compare = httpx.post(
        f"{real_server}/compare-faces",
        headers=headers,
        json={"embedding_a": extract["embedding"], "embedding_b": extract["embedding"]},
        timeout=30,
    ).json()
    assert compare["similarity"] == pytest.approx(1.0, abs=1e-5)
    unauthorised = httpx.post(f"{real_server}/extract-embedding", json={"image_base64": b64(SELFIE)}, timeout=30)
    assert unauthorised.status_code == 401


def test_without_a_key_one_is_generated_and_printed_once() -> None:
    port = free_port()
    process = start({"FACE_BACKEND": "fake"}, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, base)
    finally:
        code, output = stop(process)
    assert stopped_cleanly(code, output), output
    keys = re.findall(r"generated one for this run: (\S+)", output)
    assert len(keys) == 1 and len(keys[0]) >= 32
    assert output.count(keys[0]) == 1


def test_a_bad_setting_stops_start_up_with_its_name() -> None:
    result = subprocess.run(
        [COMMAND, "serve"],
        env={**os.environ, "API_KEY": API_KEY, "PORT": "http"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr


def test_a_missing_model_stops_start_up_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [COMMAND, "serve"],
        env={**os.environ, "API_KEY": API_KEY, "MODEL_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "has no ONNX file" in result.stderr


def test_embed_prints_json_lines() -> None:
    result = subprocess.run(
        [COMMAND, "embed", str(SELFIE), str(GROUP_PHOTO), "--all-faces"],
        env={**os.environ, "API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import json

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["faces_count"] for line in lines] == [1, 6]
    assert len(lines[1]["faces"]) == 6 and len(lines[1]["faces"][0]["embedding"]) == 512


def test_embed_takes_folders_and_writes_json_lines(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(SELFIE, folder / "a.jpg")
    shutil.copy(GROUP_PHOTO, folder / "nested" / "b.jpg")
    (folder / "nested" / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    output = tmp_path / "faces.jsonl"
    result = subprocess.run(
        [COMMAND, "embed", str(folder), "--all-faces", "-o", str(output)],
        env={**os.environ, "API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1  # one image could not be used; the others are still written
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["a.jpg", "b.jpg", "broken.png"]
    assert [line.get("faces_count") for line in lines] == [1, 6, None]
    assert lines[2]["code"] == "unsupported_image_format"


def test_compare_prints_similarity_and_match() -> None:
    import json

    def compare(a: Path, b: Path) -> dict[str, object]:
        result = subprocess.run(
            [COMMAND, "compare", str(a), str(b)],
            env={**os.environ, "API_KEY": API_KEY},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    same = compare(SELFIE, SELFIE)
    assert same["match"] is True and same["similarity"] == pytest.approx(1.0, abs=1e-5)
    different = compare(SELFIE, GROUP_PHOTO)
    assert different["match"] is False and float(different["similarity"]) < 0.4  # type: ignore[arg-type]
