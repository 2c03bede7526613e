"""The quality meter's fast paths (several faces at once, the parts of a crop it reads, its own
alignment for /verify-face) against the plain per-crop formulas docs/quality.md describes, on the
bundled photos and degraded copies of them: the same numbers on the recogniser's crops, and within
a rounding step (levels, scores and reasons the same) on the meter's own."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pytest

from adapters.quality.head_pose import head_pose
from app.bootstrap import Container
from bench.quality import blur, jpeg
from domain.model import BoundingBox, DetectedFace, Image, Pixels
from domain.quality import DEFAULT_RULES, QualityMeasures, assess
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TIGHT_CROP, TRIO_PHOTO

pytestmark = pytest.mark.real_model

WHOLE = BoundingBox(0, 0, 1, 1)


def reference_measures(image: Image, face: DetectedFace, crop: Pixels) -> QualityMeasures:
    """One face measured alone on its whole 112x112 crop, step by step as docs/quality.md says."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mean, deviation = (float(v[0][0]) for v in cv2.meanStdDev(grey[32:104, 24:88]))
    half = cv2.resize(grey, (56, 56), interpolation=cv2.INTER_AREA)
    edges = cv2.Laplacian(half, cv2.CV_32F)
    sharpness = float(cv2.meanStdDev(edges[16:52, 12:44])[1][0][0]) / max(
        float(cv2.meanStdDev(half[16:52, 12:44])[1][0][0]), 1.0
    )
    box, (left_eye, right_eye) = face.box, face.landmarks[:2]
    return QualityMeasures(
        face_size=round(min(box.x2 - box.x1, box.y2 - box.y1), 1),
        eye_distance=round(float(np.hypot(right_eye[0] - left_eye[0], right_eye[1] - left_eye[1])), 1),
        pose=head_pose(face.landmarks),
        sharpness=round(sharpness, 4),
        brightness=round(mean / 255.0, 4),
        contrast=round(deviation / 255.0, 4),
        blockiness=round(reference_blockiness(image, face), 4),
        confidence=round(face.confidence, 4),
    )


def reference_blockiness(image: Image, face: DetectedFace) -> float:
    box = face.box.clipped(image.width, image.height)
    centre_x, centre_y = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    half_width, half_height = min(2 * (box.x2 - box.x1), 128) / 2, min(2 * (box.y2 - box.y1), 128) / 2
    left, top = max(0, int(centre_x - half_width)), max(0, int(centre_y - half_height))
    right, bottom = min(image.width, int(centre_x + half_width) + 1), min(image.height, int(centre_y + half_height) + 1)
    grey = cv2.cvtColor(image.pixels[top:bottom, left:right], cv2.COLOR_BGR2GRAY)
    across = cv2.reduce(cv2.absdiff(grey[:, 1:], grey[:, :-1]), 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    down = cv2.reduce(cv2.absdiff(grey[1:], grey[:-1]), 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()

    def grid_contrast(steps: np.ndarray) -> float:  # numpy's float32 mean of each of the 8 phases
        means = np.sort(steps[: steps.size - steps.size % 8].reshape(-1, 8).mean(axis=0))
        return float((means[-1] + 0.5) / (means[-2] + 0.5))

    return min(grid_contrast(across), grid_contrast(down))


def photos() -> Iterator[tuple[str, Image]]:
    """Each bundled photo, clean, blurred and compressed hard (so blockiness and sharpness move)."""
    for path in (GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO, TIGHT_CROP):
        pixels = np.asarray(cv2.imread(str(path)), dtype=np.uint8)
        yield path.name, Image(pixels)
        yield f"{path.name} blurred", Image(blur(pixels, 2.0, WHOLE))
        yield f"{path.name} at JPEG 15", Image(jpeg(pixels, 15, WHOLE))


@pytest.fixture(scope="module")
def measured(
    real_container: Container,
) -> list[tuple[str, Image, list[DetectedFace], Sequence[Pixels], Sequence[Pixels]]]:
    """Per photo: its faces, the recogniser's crops and the meter's own."""
    detector, embedder, meter = real_container.detector(), real_container.embedder(), real_container.quality_meter()
    out = []
    for name, image in photos():
        faces = detector.detect(image)
        assert faces, name
        out.append((name, image, faces, embedder.align(image, faces), meter.align(image, faces)))
    return out


def test_on_the_recognisers_crops_the_meter_gives_the_per_crop_formulas_numbers(
    real_container: Container, measured: list[tuple[str, Image, list[DetectedFace], Sequence[Pixels], Sequence[Pixels]]]
) -> None:
    meter, count = real_container.quality_meter(), 0
    for name, image, faces, crops, _ in measured:
        expected = [reference_measures(image, face, crop) for face, crop in zip(faces, crops, strict=True)]
        assert meter.measure(image, faces, crops) == expected, name
        count += len(faces)
    assert count > 90  # every face of the five photos, three times (96)


def test_faces_measured_together_read_as_each_alone(
    real_container: Container, measured: list[tuple[str, Image, list[DetectedFace], Sequence[Pixels], Sequence[Pixels]]]
) -> None:
    meter = real_container.quality_meter()
    for name, image, faces, crops, own in measured:
        for kind in (crops, own):
            alone = [meter.measure(image, [face], [crop])[0] for face, crop in zip(faces, kind, strict=True)]
            assert meter.measure(image, faces, kind) == alone, name


def test_the_meters_own_alignment_moves_no_level_score_or_reason(
    real_container: Container, measured: list[tuple[str, Image, list[DetectedFace], Sequence[Pixels], Sequence[Pixels]]]
) -> None:
    """/verify-face's crops (the part the measures read, warped alone) differ from the recogniser's
    by OpenCV's rounding of a shifted warp: the pixel measures by at most a few steps of their
    rounding, the rest not at all."""
    meter = real_container.quality_meter()
    pixel_measures = {"sharpness", "brightness", "contrast"}
    for name, image, faces, crops, own in measured:
        for recognisers, meters in zip(
            meter.measure(image, faces, crops), meter.measure(image, faces, own), strict=True
        ):
            for field in dataclasses.fields(QualityMeasures):
                a, b = getattr(recognisers, field.name), getattr(meters, field.name)
                assert abs(a - b) <= 0.0005 if field.name in pixel_measures else a == b, (name, field.name)
            expected, got = assess(recognisers, DEFAULT_RULES), assess(meters, DEFAULT_RULES)
            assert (got.level, got.score, got.reasons) == (expected.level, expected.score, expected.reasons), name
