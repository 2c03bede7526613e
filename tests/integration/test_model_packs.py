"""Model packs: the embedded default, user folders, execution providers, clear start-up failures."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from adapters.models.model_pack import embedded_pack, load_model, pack_from_dir
from adapters.models.onnx_model import GraphSignature, weights_digest
from adapters.models.onnx_runtime import available_providers, resolve_providers, session_options
from adapters.models.registry import MODELS, Task, task_of
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
    shutil.copy(VECTRON_MODEL_DIR / "2d106det.onnx", folder / "0_landmarks.onnx")
    shutil.copy(VECTRON_MODEL_DIR / "box_aligner.onnx", folder / "1_other.onnx")  # no task: skipped
    pack = pack_from_dir(folder)
    assert pack.name == "my_pack"
    assert {task: model.path.name for task, model in pack.models.items()} == {
        Task.DETECTION: "b_detector.onnx",
        Task.RECOGNITION: "a_recogniser.onnx",
        Task.LANDMARKS_2D_106: "0_landmarks.onnx",
    }
    assert pack.model(Task.LANDMARKS_2D_106).raw_pixels  # an MXNet export: it normalises inside
    assert not pack.model(Task.RECOGNITION).raw_pixels


@pytest.mark.parametrize(
    ("inputs", "outputs", "task"),
    [
        ([(None, 3, None, None)], [(None, None, 1)] * 9, Task.DETECTION),  # SCRFD with keypoints
        ([(None, 3, 112, 112)], [(1, 512)], Task.RECOGNITION),
        ([(None, 3, 128, 128)], [(1, 512)], Task.RECOGNITION),
        ([(None, 3, 192, 192)], [(1, 212)], Task.LANDMARKS_2D_106),
        ([(None, 3, 192, 192)], [(1, 3309)], None),  # 1k3d68: 3D landmarks, no class for it yet
        ([(None, 3, 96, 96)], [(1, 3)], None),  # genderage
        ([(None, 3, 128, 128), (1, 512)], [(1, 3, 128, 128)], None),  # inswapper
        ([(None, 3, 100, 100)], [(1, 512)], None),
    ],
)
def test_graphs_are_routed_as_insightfaces_model_router(inputs: list, outputs: list, task: Task | None) -> None:
    assert task_of(GraphSignature(tuple(inputs), tuple(outputs), ("Conv_0",))) == task


def test_every_model_of_the_embedded_pack_loads_through_the_registry_and_warms_up() -> None:
    pack = embedded_pack()
    assert set(pack.models) == set(Task)
    settings = {Task.DETECTION: {"max_side": 640, "threshold": 0.5}, Task.RECOGNITION: {"pack_name": pack.name}}
    for task in Task:
        model = load_model(task, pack, ["CPUExecutionProvider"], session_options(1), **settings.get(task, {}))
        assert type(model) is MODELS[task]
        assert model.providers == ["CPUExecutionProvider"]
        model.warm_up()  # again: a warmed-up session runs as before


def test_model_dir_serves_with_its_own_model_id(tmp_path: Path) -> None:
    folder = tmp_path / "copy_of_s"
    folder.mkdir()
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(VECTRON_MODEL_DIR / name, folder / name)
    container = bootstrap(settings_for("insightface", MODEL_DIR=str(folder)))
    service = container.service()
    assert service.model.id == f"copy_of_s:{weights_digest(folder / 'w600k_mbf.onnx')}"
    assert service.extract(SELFIE.read_bytes()).faces_count == 1
    with pytest.raises(ModelUnavailable, match="copy_of_s has no landmarks_2d_106 model"):
        container.landmarks()


def test_the_landmark_model_loads_only_when_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    container = bootstrap(settings_for("insightface"))
    with caplog.at_level(logging.INFO, logger="adapters.models"):
        container.service().warm_up()
    loaded = [record.getMessage() for record in caplog.records if "loaded in" in record.getMessage()]
    assert [message.split(" on ")[0] for message in loaded] == [
        "InsightFaceDetector scrfd_500m_bnkps.onnx",
        "InsightFaceEmbedder w600k_mbf.onnx",
    ]
    assert all("CPUExecutionProvider" in message for message in loaded)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adapters.models"):
        landmarks = container.landmarks()
    assert "InsightFaceLandmarks 2d106det.onnx on CPUExecutionProvider" in caplog.text
    assert container.landmarks() is landmarks  # one session per container


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


def test_a_provider_a_session_did_not_start_on_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from adapters.models.insightface_backend import InsightFaceDetector

    installed = available_providers()
    missing = next(p for p in ("CUDAExecutionProvider", "ROCMExecutionProvider") if p not in installed)
    requested = [missing, "CPUExecutionProvider"]  # not resolved first: straight to the session
    path, options = embedded_pack().detector, session_options(1)
    with caplog.at_level(logging.INFO, logger="adapters.models"), pytest.warns(UserWarning):
        detector = InsightFaceDetector(path, requested, options, max_side=640, threshold=0.5)
    assert detector.providers == ["CPUExecutionProvider"]
    assert f"{missing} did not start" in caplog.text
    assert "InsightFaceDetector scrfd_500m_bnkps.onnx on CPUExecutionProvider: loaded in" in caplog.text


def test_auto_picks_what_is_installed() -> None:
    assert resolve_providers(None)[-1] == "CPUExecutionProvider"
