"""A bounded run of the image-input fuzz target (fuzz/fuzz_decode.py); longer runs are documented there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.support.paths import ROOT


def test_fuzz_target_survives_a_bounded_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for extension in (".jpg", ".png", ".webp", ".bmp"):
        ok, data = cv2.imencode(extension, pixels)
        assert ok
        (corpus / f"raw{extension}").write_bytes(b"\x00" + data.tobytes())  # first byte: not base64
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_decode.py"), "-runs=3000", "-seed=1", str(corpus)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 3000 runs" in result.stderr
    assert not list(tmp_path.glob("crash-*"))
