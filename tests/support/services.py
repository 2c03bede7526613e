"""Services for in-process tests: settings, HTTP test clients, the image decoder with its limits.
Runtime dependencies only, so that every tier (tests/unit included) may use them."""

from __future__ import annotations

import tempfile

import cv2
import numpy as np
from litestar.testing import TestClient

from adapters.images.decoder import OpenCVImageDecoder
from app.bootstrap import Container, bootstrap
from app.settings import Settings

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def settings_for(backend: str, **overrides: str) -> Settings:
    """Settings for in-process tests. Their jobs run on threads (INFERENCE_ISOLATION=thread): the
    same job code as worker processes, without a process start per test client. The process mode,
    the default, is tested by tests/integration/test_workers.py and every test that starts
    `face-service serve`."""
    env = {
        "API_KEY": API_KEY,
        "FACE_BACKEND": backend,
        "INFERENCE_ISOLATION": "thread",
        "DATA_DIR": tempfile.mkdtemp(prefix="face-service-test-"),  # never the repository's ./data
        **overrides,
    }
    return Settings.from_env(env)


def make_client(settings: Settings, container: Container | None = None) -> TestClient:  # type: ignore[type-arg]
    container = container or bootstrap(settings)
    return TestClient(app=container.http_app())


def decoder(**limits: object) -> OpenCVImageDecoder:
    """The decoder with the settings' default limits, or these."""
    defaults = settings_for("fake")
    options: dict[str, object] = {
        "max_bytes": defaults.max_image_bytes,
        "max_pixels": defaults.max_image_pixels,
        "max_side": defaults.max_image_side,
        "fast_jpeg_decode": defaults.fast_jpeg_decode,
        "det_size": defaults.det_size,
    }
    return OpenCVImageDecoder(**{**options, **limits})  # type: ignore[arg-type]


def encode_png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()
