"""Our ONNX Runtime adapters against insightface.model_zoo itself: same graphs, same numbers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from adapters.models.insightface_backend import (
    InsightFaceDetector,
    InsightFaceEmbedder,
    detector_input_size,
)
from adapters.models.landmarks import InsightFaceLandmarks
from adapters.models.model_pack import EMBEDDED_MODELS, embedded_pack, pack_from_dir
from adapters.models.registry import Task
from domain.model import Image
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TIGHT_CROP, TRIO_PHOTO

pytestmark = pytest.mark.real_model
PHOTOS = [SELFIE, GROUP_PHOTO, TEAM_PHOTO, TRIO_PHOTO, TIGHT_CROP]


@pytest.fixture(scope="module")
def reference() -> tuple[object, object, object]:
    from insightface import model_zoo

    pack = embedded_pack()
    detector = model_zoo.get_model(str(pack.detector), providers=["CPUExecutionProvider"], static_shape_sessions=False)
    detector.prepare(ctx_id=0, det_thresh=0.5, nms_thresh=0.4)
    recogniser = model_zoo.get_model(str(pack.recognizer), providers=["CPUExecutionProvider"])
    landmarks = model_zoo.get_model(str(pack.model(Task.LANDMARKS_2D_106).path), providers=["CPUExecutionProvider"])
    return detector, recogniser, landmarks


@pytest.fixture(scope="module")
def ours() -> tuple[InsightFaceDetector, InsightFaceEmbedder, InsightFaceLandmarks]:
    pack = embedded_pack()
    options = ort.SessionOptions()
    cpu = ["CPUExecutionProvider"]
    detector = InsightFaceDetector(pack.detector, cpu, options, max_side=640, threshold=0.5)
    embedder = InsightFaceEmbedder(pack.recognizer, cpu, options, pack.name)
    packed = pack.model(Task.LANDMARKS_2D_106)
    landmarks = InsightFaceLandmarks(packed.path, cpu, options, raw_pixels=packed.raw_pixels)
    return detector, embedder, landmarks


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: Path(p).name)
def test_detections_equal_insightface_scrfd(photo: Path, reference: tuple[object, object], ours: tuple) -> None:
    pixels = cv2.imread(str(photo))
    size = detector_input_size(pixels.shape[1], pixels.shape[0], 640)
    boxes, points = reference[0].detect(pixels, input_size=size)  # type: ignore[attr-defined]
    faces = ours[0].detect(Image(pixels))
    assert len(faces) == len(boxes) > 0
    ours_sorted = sorted(faces, key=lambda f: -f.confidence)
    order = np.argsort(-boxes[:, 4], kind="stable")
    for face, index in zip(ours_sorted, order, strict=True):
        height, width = pixels.shape[:2]
        expected = np.clip(boxes[index, :4], 0, [width, height, width, height])
        assert [face.box.x1, face.box.y1, face.box.x2, face.box.y2] == pytest.approx(expected.tolist(), abs=1e-3)
        assert face.confidence == pytest.approx(float(boxes[index, 4]), abs=1e-5)
        assert np.asarray(face.landmarks) == pytest.approx(points[index], abs=1e-3)


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: Path(p).name)
def test_embeddings_equal_insightface_arcface(photo: Path, reference: tuple[object, object], ours: tuple) -> None:
    pixels = cv2.imread(str(photo))
    image = Image(pixels)
    faces = ours[0].detect(image)
    vectors = ours[1].embed(image, faces)

    class InsightFaceFace:  # the attribute ArcFaceONNX.get reads
        def __init__(self, kps: np.ndarray) -> None:
            self.kps = kps

    for face, vector in zip(faces, vectors, strict=True):
        theirs = reference[1].get(pixels, InsightFaceFace(np.asarray(face.landmarks, dtype=np.float32)))  # type: ignore[attr-defined]
        theirs = theirs / np.linalg.norm(theirs)
        assert float(vector @ theirs) > 0.9999


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: Path(p).name)
def test_106_landmarks_equal_insightface_landmark(photo: Path, reference: tuple, ours: tuple) -> None:
    from insightface.app.common import Face

    pixels = cv2.imread(str(photo))
    image = Image(pixels)
    faces = ours[0].detect(image)
    located = ours[2].locate(image, faces)
    assert len(located) == len(faces) > 0
    for face, points in zip(faces, located, strict=True):
        box = np.array([face.box.x1, face.box.y1, face.box.x2, face.box.y2], dtype=np.float32)
        theirs = reference[2].get(pixels, Face(bbox=box))
        assert theirs.shape == points.shape == (106, 2)
        np.testing.assert_allclose(points, theirs, atol=1e-4)


def test_pixels_are_normalised_as_insightface_reads_the_graphs(reference: tuple, ours: tuple) -> None:
    for theirs, mine in zip(reference[1:], ours[1:], strict=True):  # the recogniser, the landmarks
        assert (mine.input_mean, mine.input_std) == (theirs.input_mean, theirs.input_std)
    assert (ours[2].input_mean, ours[2].input_std) == (0.0, 1.0)  # 2d106det normalises inside


def test_the_embedded_pack_is_routed_as_a_model_dir_would_be(tmp_path: Path) -> None:
    """The embedded pack's files and normalisation are written out (the default start reads no
    graph); reading the graphs, as for a MODEL_DIR pack, gives the same."""
    pack = embedded_pack()
    folder = tmp_path / "buffalo_s"
    folder.mkdir()
    for task in EMBEDDED_MODELS:
        (folder / pack.model(task).path.name).symlink_to(pack.model(task).path)
    routed = pack_from_dir(folder)
    assert {task: (m.path.name, m.raw_pixels) for task, m in routed.models.items()} == EMBEDDED_MODELS
    assert {task: (m.path.name, m.raw_pixels) for task, m in pack.models.items()} == EMBEDDED_MODELS
