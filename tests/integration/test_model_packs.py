"""Model packs: the embedded default, user folders, execution providers, clear start-up failures."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from adapters.models.model_pack import embedded_pack, pack_from_dir, weights_digest
from adapters.models.onnx_runtime import resolve_providers
from app.bootstrap import bootstrap
from domain.errors import ModelUnavailable
from tests.support.photos import SELFIE, VECTRON_MODEL_DIR
from tests.support.services import settings_for

pytestmark = pytest.mark.real_model


def test_the_embedded_pack_is_buffalo_s_from_the_installed_wheel() -> None:
    pack = embedded_pack()
    assert pack.name == "buffalo_s"
    assert pack.detector == VECTRON_MODEL_DIR / "scrfd_500m_bnkps.onnx"
    assert pack.recognizer == VECTRON_MODEL_DIR / "w600k_mbf.onnx"


def test_a_pack_folder_is_routed_by_graph_not_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "my_pack"
    folder.mkdir()
    shutil.copy(VECTRON_MODEL_DIR / "scrfd_500m_bnkps.onnx", folder / "b_detector.onnx")
    shutil.copy(VECTRON_MODEL_DIR / "w600k_mbf.onnx", folder / "a_recogniser.onnx")
    shutil.copy(VECTRON_MODEL_DIR / "2d106det.onnx", folder / "0_landmarks.onnx")  # neither: skipped
    pack = pack_from_dir(folder)
    assert (pack.name, pack.detector.name, pack.recognizer.name) == ("my_pack", "b_detector.onnx", "a_recogniser.onnx")


def test_model_dir_serves_with_its_own_model_id(tmp_path: Path) -> None:
    folder = tmp_path / "copy_of_s"
    folder.mkdir()
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(VECTRON_MODEL_DIR / name, folder / name)
    service = bootstrap(settings_for("insightface", MODEL_DIR=str(folder))).service()
    assert service.model.id == f"copy_of_s:{weights_digest(folder / 'w600k_mbf.onnx')}"
    assert service.extract(SELFIE.read_bytes()).faces_count == 1


def test_a_folder_without_a_recogniser_fails_clearly(tmp_path: Path) -> None:
    shutil.copy(VECTRON_MODEL_DIR / "scrfd_500m_bnkps.onnx", tmp_path / "det.onnx")
    with pytest.raises(ModelUnavailable, match="recogniser"):
        pack_from_dir(tmp_path)


def test_a_corrupt_model_file_fails_at_start_up_not_per_request(tmp_path: Path) -> None:
    (tmp_path / "det.onnx").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelUnavailable, match=r"det\.onnx"):
        pack_from_dir(tmp_path)


def test_an_unavailable_provider_falls_back_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        chosen = resolve_providers(("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert chosen == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider is not available" in caplog.text


def test_auto_picks_what_is_installed() -> None:
    assert resolve_providers(None)[-1] == "CPUExecutionProvider"
