"""The install itself: exactly one OpenCV, the headless one, and the models inside the install."""

from __future__ import annotations

import importlib.metadata

import cv2

from tests.support.photos import VECTRON_MODEL_DIR


def test_exactly_one_headless_cv2() -> None:
    owners = importlib.metadata.packages_distributions().get("cv2", [])
    assert owners == ["opencv-python-headless"], owners
    # A build with a GUI backend would need libGL, which slim containers lack.
    build = cv2.getBuildInformation()
    gui_line = next(line for line in build.splitlines() if line.strip().startswith("GUI:"))
    assert gui_line.split(":", 1)[1].strip() in ("NONE", "")


def test_the_default_models_come_with_the_install() -> None:
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        assert (VECTRON_MODEL_DIR / name).stat().st_size > 1_000_000
