"""The ports' contract, checked on both the fake and the real InsightFace backend."""

from __future__ import annotations

import numpy as np
import pytest

from domain.errors import UndecodableImage, UnsupportedImageFormat
from domain.use_cases.faces import FaceService
from tests.support.photos import GROUP_PHOTO, SELFIE
from tests.support.services import encode_png


def test_finds_a_face_with_its_box_inside_the_image(any_service: FaceService) -> None:
    detection = any_service.detect(SELFIE.read_bytes())
    assert detection.faces, "a portrait must hold a face"
    for face in detection.faces:
        box = face.box
        assert 0 <= box.x1 < box.x2 <= detection.width
        assert 0 <= box.y1 < box.y2 <= detection.height
        assert 0.0 < face.confidence <= 1.0
        assert len(face.landmarks) == 5


def test_faces_are_ordered_largest_first(any_service: FaceService) -> None:
    faces = any_service.detect(GROUP_PHOTO.read_bytes()).faces
    areas = [face.box.area for face in faces]
    assert areas == sorted(areas, reverse=True)


def test_a_flat_image_holds_no_face(any_service: FaceService) -> None:
    flat = encode_png(np.full((200, 300, 3), 127, dtype=np.uint8))
    extraction = any_service.extract(flat)
    assert extraction.faces == []
    assert extraction.faces_count == 0


def test_embeddings_are_unit_vectors_of_the_declared_size(any_service: FaceService) -> None:
    extraction = any_service.extract(SELFIE.read_bytes())
    (face,) = extraction.faces
    assert face.embedding.shape == (any_service.model.dimension,)
    assert face.embedding.dtype == np.float32
    assert np.isfinite(face.embedding).all()
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    assert face.model == any_service.model


def test_the_same_image_gives_the_same_embedding(any_service: FaceService) -> None:
    first = any_service.extract(SELFIE.read_bytes()).faces[0].embedding
    second = any_service.extract(SELFIE.read_bytes()).faces[0].embedding
    assert float(first @ second) == pytest.approx(1.0, abs=1e-5)


def test_all_faces_embeds_every_face_in_order(any_service: FaceService) -> None:
    extraction = any_service.extract(GROUP_PHOTO.read_bytes(), all_faces=True)
    assert len(extraction.faces) == extraction.faces_count
    primary_only = any_service.extract(GROUP_PHOTO.read_bytes())
    assert len(primary_only.faces) == 1
    assert primary_only.faces_count == extraction.faces_count
    assert primary_only.faces[0].face == extraction.faces[0].face


def test_model_id_names_the_pack_and_the_weights(any_service: FaceService) -> None:
    model = any_service.model
    assert model.id == f"{model.pack}:{model.weights_digest}"
    assert len(model.weights_digest) == 8


def test_bytes_that_are_no_image_are_refused(any_service: FaceService) -> None:
    with pytest.raises(UnsupportedImageFormat):
        any_service.extract(b"%PDF-1.7 not an image")
    with pytest.raises(UndecodableImage):
        any_service.extract(SELFIE.read_bytes()[:200])  # a JPEG cut short
