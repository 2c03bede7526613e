"""A corpus of hostile and malformed requests: each gets its exact status and stable code, and the
service still serves afterwards. Runs on the fake backend (decoding and validation are real)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from litestar.testing import TestClient

from tests.support.photos import SELFIE, b64
from tests.support.services import API_KEY, AUTH, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
LIMITS = {"MAX_REQUEST_BYTES": "400000", "MAX_IMAGE_BYTES": "250000", "MAX_BATCH_SIZE": "4", "MAX_CANDIDATES": "3"}


def encoded(extension: str, pixels: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, data = cv2.imencode(extension, pixels, params or [])
    assert ok
    return data.tobytes()


SMALL = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
PNG = encoded(".png", SMALL)
JPEG = encoded(".jpg", SMALL)
WEBP = encoded(".webp", SMALL)


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(PNG)
    data[16:24] = struct.pack(">II", width, height)  # the IHDR's size; the pixels stay tiny
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(JPEG)
    start = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    chunk += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def as_json(data: bytes) -> dict[str, Any]:
    return {"json": {"image_base64": base64.b64encode(data).decode()}}


def upload(data: bytes, name: str = "file") -> dict[str, Any]:
    return {"files": {name: ("x.bin", data, "application/octet-stream")}}


def raw(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": content_type}}


V = [0.1] * 512
CORPUS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # authentication
    ("no key", "/extract-embedding", {"auth": None, **as_json(JPEG)}, 401, "unauthorized"),
    ("empty bearer", "/extract-embedding", {"auth": "Bearer ", **as_json(JPEG)}, 401, "unauthorized"),
    ("basic scheme", "/extract-embedding", {"auth": f"Basic {API_KEY}", **as_json(JPEG)}, 401, "unauthorized"),
    ("wrong key", "/extract-embedding", {"auth": "Bearer not-the-key-123", **as_json(JPEG)}, 401, "unauthorized"),
    ("key prefix", "/extract-embedding", {"auth": f"Bearer {API_KEY[:-1]}", **as_json(JPEG)}, 401, "unauthorized"),
    ("key plus junk", "/extract-embedding", {"auth": f"Bearer {API_KEY}x", **as_json(JPEG)}, 401, "unauthorized"),
    ("key without scheme", "/verify-face", {"auth": API_KEY, **as_json(JPEG)}, 401, "unauthorized"),
    ("key in query", f"/verify-face?api_key={API_KEY}", {"auth": None, **as_json(JPEG)}, 401, "unauthorized"),
    # broken JSON and wrong shapes
    ("truncated JSON", "/extract-embedding", raw(b'{"image_base64": "abc'), 400, "invalid_json"),
    ("empty body", "/extract-embedding", raw(b""), 400, "invalid_json"),
    ("JSON array", "/extract-embedding", raw(b"[]"), 400, "invalid_request"),
    ("JSON null", "/extract-embedding", raw(b"null"), 400, "invalid_request"),
    ("deep nesting", "/extract-embedding", raw(b'{"image_base64": ' + b"[" * 100_000), 400, "invalid_request"),
    ("not UTF-8", "/extract-embedding", raw(b'{"image_base64": "\xff\xfe"}'), 400, "invalid_json"),
    ("number for image", "/extract-embedding", {"json": {"image_base64": 12345}}, 400, "invalid_request"),
    ("list for image", "/extract-embedding", {"json": {"image_base64": ["a"]}}, 400, "invalid_request"),
    ("null for image", "/extract-embedding", {"json": {"image_base64": None}}, 400, "invalid_request"),
    ("missing field", "/extract-embedding", {"json": {"image": b64(SELFIE)}}, 400, "invalid_request"),
    # base64
    ("bad base64", "/extract-embedding", {"json": {"image_base64": "!!!not base64!!!"}}, 400, "invalid_base64"),
    ("padding only", "/extract-embedding", {"json": {"image_base64": "===="}}, 400, "invalid_base64"),
    ("empty base64", "/extract-embedding", {"json": {"image_base64": ""}}, 400, "invalid_base64"),
    # not images
    ("text", "/extract-embedding", as_json(b"hello, I am not an image"), 415, "unsupported_image_format"),
    ("PDF", "/extract-embedding", as_json(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), 415, "unsupported_image_format"),
    ("GIF", "/verify-face", upload(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"), 415, "unsupported_image_format"),
    ("TIFF", "/verify-face", upload(b"II*\x00\x08\x00\x00\x00" + b"\x00" * 64), 415, "unsupported_image_format"),
    ("SVG", "/verify-face", upload(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), 415, "unsupported_image_format"),
    ("ELF", "/verify-face", upload(b"\x7fELF\x02\x01\x01" + b"\x00" * 64), 415, "unsupported_image_format"),
    # truncated or corrupt images
    ("JPEG cut to its header", "/extract-embedding", as_json(JPEG[:20]), 422, "invalid_image"),
    ("PNG signature only", "/extract-embedding", as_json(PNG[:8]), 422, "invalid_image"),
    ("PNG cut mid-data", "/extract-embedding", as_json(PNG[: len(PNG) // 2]), 422, "invalid_image"),
    ("WebP cut mid-data", "/extract-embedding", as_json(WEBP[: len(WEBP) // 2]), 422, "invalid_image"),
    ("BMP header only", "/extract-embedding", as_json(b"BM" + b"\x00" * 12), 422, "invalid_image"),
    # decompression bombs: headers claiming huge sizes in a few bytes
    ("PNG claims 30000x30000", "/extract-embedding", as_json(png_claiming(30000, 30000)), 413, "image_too_large"),
    ("PNG claims 100000x1", "/extract-embedding", as_json(png_claiming(100000, 1)), 413, "image_too_large"),
    ("JPEG claims 65000x65000", "/extract-embedding", as_json(jpeg_claiming(65000, 65000)), 413, "image_too_large"),
    ("WebP claims 16383x16383", "/extract-embedding", as_json(webp_claiming(16383, 16383)), 413, "image_too_large"),
    ("PNG claims 0x0", "/extract-embedding", as_json(png_claiming(0, 0)), 422, "invalid_image"),
    # sizes
    ("image over MAX_IMAGE_BYTES", "/verify-face", upload(b"\xff\xd8\xff" + b"\x00" * 300_000), 413, "image_too_large"),
    ("body over MAX_REQUEST_BYTES", "/verify-face", raw(b"x" * 500_000), 413, "request_too_large"),
    ("multipart over MAX_REQUEST_BYTES", "/verify-face", upload(b"\x00" * 500_000), 413, "request_too_large"),
    # multipart and content types
    ("no file part", "/extract-embedding", upload(JPEG, name="image"), 400, "missing_image"),
    (
        "two files for one",
        "/extract-embedding",
        {"files": [("file", ("a", JPEG)), ("file", ("b", JPEG))]},
        400,
        "missing_image",
    ),
    (
        "file part as text",
        "/extract-embedding",
        {"data": {"file": "not a file"}, "files": {"x": ("x", b"")}},
        400,
        "invalid_request",
    ),
    (
        "broken multipart",
        "/verify-face",
        raw(b"--zz\r\nnonsense", "multipart/form-data; boundary=zz"),
        400,
        "invalid_request",
    ),
    ("text/plain", "/extract-embedding", raw(b"image please", "text/plain"), 415, "unsupported_media_type"),
    ("raw image bytes", "/extract-embedding", raw(JPEG, "image/jpeg"), 415, "unsupported_media_type"),
    (
        "form-urlencoded",
        "/verify-face",
        raw(b"file=abc", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    ),
    # batches
    ("batch over limit", "/batch-extract", {"json": {"images": [b64(SELFIE)] * 5}}, 413, "batch_too_large"),
    ("empty batch", "/batch-extract", {"json": {"images": []}}, 400, "empty_batch"),
    ("images not a list", "/batch-extract", {"json": {"images": "abc"}}, 400, "invalid_request"),
    ("image item not a string", "/batch-extract", {"json": {"images": [1, 2]}}, 400, "invalid_request"),
    # embeddings
    (
        "short embedding",
        "/compare-faces",
        {"json": {"embedding_a": V[:-1], "embedding_b": V}},
        422,
        "invalid_embedding",
    ),
    (
        "zero embedding",
        "/compare-faces",
        {"json": {"embedding_a": [0.0] * 512, "embedding_b": V}},
        422,
        "invalid_embedding",
    ),
    (
        "NaN as a string",
        "/compare-faces",
        {"json": {"embedding_a": ["NaN", *V[1:]], "embedding_b": V}},
        422,
        "invalid_embedding",
    ),
    (
        "bool in embedding",
        "/compare-faces",
        {"json": {"embedding_a": [True, *V[1:]], "embedding_b": V}},
        422,
        "invalid_embedding",
    ),
    ("huge number", "/compare-faces", raw(b'{"embedding_a": [1e400], "embedding_b": [1]}'), 422, "invalid_embedding"),
    (
        "models differ",
        "/compare-faces",
        {"json": {"embedding_a": V, "embedding_b": V, "model_a": "a:1", "model_b": "b:2"}},
        422,
        "model_mismatch",
    ),
    (
        "too many candidates",
        "/compare-faces",
        {"json": {"embedding_a": V, "candidates": [V] * 4}},
        400,
        "too_many_candidates",
    ),
    ("neither b nor candidates", "/compare-faces", {"json": {"embedding_a": V}}, 400, "invalid_request"),
    ("compare as multipart", "/compare-faces", upload(JPEG), 415, "unsupported_media_type"),
    # routes, methods, parameters
    ("unknown route", "/admin", {"json": {}}, 404, "not_found"),
    ("path traversal", "/../../etc/passwd", {"json": {}}, 404, "not_found"),
    ("bad all_faces", "/verify-face?all_faces=perhaps", as_json(JPEG), 400, "invalid_request"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with make_client(settings_for("fake", **LIMITS)) as test_client:
        yield test_client


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize(("name", "path", "kwargs", "status", "code"), CORPUS, ids=[case[0] for case in CORPUS])
def test_hostile_request(client: Client, name: str, path: str, kwargs: dict[str, Any], status: int, code: str) -> None:
    kwargs = dict(kwargs)
    auth = kwargs.pop("auth", f"Bearer {API_KEY}")
    headers = {**kwargs.pop("headers", {}), **({"Authorization": auth} if auth else {})}
    response = client.post(path, headers=headers, **kwargs)
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    body = response.json()
    assert set(body) <= {"error", "code", "field", "request_id"} and body["error"]
    assert "Traceback" not in response.text and "/site-packages/" not in response.text
    # ...and the service still serves.
    assert client.post("/verify-face", headers=AUTH, json={"image_base64": b64(SELFIE)}).status_code == 200


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((64, 64), 200, np.uint8),  # grayscale
        np.random.default_rng(1).integers(0, 65535, (64, 64, 3), dtype=np.uint16),  # 16-bit
        np.random.default_rng(2).integers(0, 256, (64, 64, 4), dtype=np.uint8),  # alpha
    ],
    ids=["grayscale", "16-bit", "alpha"],
)
def test_unusual_but_valid_images_are_accepted(client: Client, pixels: np.ndarray) -> None:
    response = client.post("/verify-face", headers=AUTH, files={"file": ("x.png", encoded(".png", pixels))})
    assert response.status_code == 200


def test_cmyk_jpeg_is_accepted(client: Client) -> None:
    import io

    from PIL import Image as PILImage  # Pillow writes CMYK JPEGs; OpenCV cannot

    buffer = io.BytesIO()
    PILImage.fromarray(SMALL[:, :, ::-1]).convert("CMYK").save(buffer, format="JPEG")
    response = client.post("/verify-face", headers=AUTH, files={"file": ("cmyk.jpg", buffer.getvalue())})
    assert response.status_code == 200
