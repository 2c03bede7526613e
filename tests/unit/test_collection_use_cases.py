"""The collection use cases (`Collections`) over the in-memory gallery: no HTTP, no models, no disk.

Faces arrive as `Extraction`s built here, as the face use cases would hand them over; the gallery is
checked by its state (what `subject`, `faces` and `search` answer afterwards), not by call lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from adapters.people.neighbours import FaissNeighbours
from adapters.stores.memory import MemoryGallery
from domain.errors import FaceServiceError
from domain.gallery import FaceRecord, GalleryLimits
from domain.model import BoundingBox, DetectedFace, EmbeddedFace, EmbeddingModel, Vector
from domain.quality import FaceQuality, HeadPose, QualityLevel, QualityMeasures, QualityReason
from domain.use_cases.collections import (
    DEFAULT_ENROLL_QUALITY,
    CollectionHeader,
    CollectionRules,
    Collections,
    EnrollOptions,
    PoorFace,
    image_digest,
)
from domain.use_cases.faces import Extraction

DIMENSION = 8
MODEL = EmbeddingModel(pack="stub", weights_digest="0badf00d", dimension=DIMENSION)
OTHER_MODEL = EmbeddingModel(pack="other", weights_digest="deadbeef", dimension=DIMENSION)
RULES = CollectionRules(default_threshold=0.5, default_top_k=3, max_top_k=10, max_page=50)
LIMITS = GalleryLimits(
    max_collections=4, max_subjects_per_collection=100, max_faces_per_subject=3, max_faces_per_collection=1000
)
MOMENT = datetime(2026, 12, 1, tzinfo=UTC)
LANDMARKS = ((1.0, 1.0), (2.0, 1.0), (1.5, 1.5), (1.0, 2.0), (2.0, 2.0))


def unit(*values: float) -> Vector:
    vector = np.zeros(DIMENSION, np.float32)
    vector[: len(values)] = values
    return (vector / np.linalg.norm(vector)).astype(np.float32)


# Three well-separated people, and a second photo of Ann close to her first.
ANN, BOB, CAT = unit(1), unit(0, 1), unit(0, 0, 1)
ANN_AGAIN = unit(1, 0.2)


MEASURES = QualityMeasures(100.0, 40.0, HeadPose(0.0, 0.0, 0.0), 0.8, 0.5, 0.12, 1.0, 0.9)
HIGH = FaceQuality(QualityLevel.HIGH, 0.95, (), MEASURES)
MEDIUM = FaceQuality(QualityLevel.MEDIUM, 0.7, (QualityReason.LOW_SHARPNESS,), MEASURES)
LOW = FaceQuality(QualityLevel.LOW, 0.3, (QualityReason.LOW_SHARPNESS, QualityReason.LOW_BRIGHTNESS), MEASURES)


def embedded(
    vector: Vector, side: float = 100.0, confidence: float = 0.9, quality: FaceQuality | None = HIGH
) -> EmbeddedFace:
    """A face as the face use cases hand it over: assessed (high unless told)."""
    face = DetectedFace(BoundingBox(10, 10, 10 + side, 10 + side), confidence, LANDMARKS, quality)
    return EmbeddedFace(face, vector, MODEL)


def extraction(*faces: EmbeddedFace, count: int | None = None) -> Extraction:
    return Extraction(640, 480, list(faces), len(faces) if count is None else count)


@dataclass
class Serving:
    """The model the service serves now; a test may switch it, as an upgrade would."""

    model: EmbeddingModel = MODEL


@pytest.fixture
def serving() -> Serving:
    return Serving()


@pytest.fixture
def collections(serving: Serving) -> Collections:
    return Collections(MemoryGallery(LIMITS), lambda: serving.model, RULES, FaissNeighbours(), clock=lambda: MOMENT)


def code_of(error: pytest.ExceptionInfo[FaceServiceError]) -> str:
    return error.value.code


def enroll(collections: Collections, person: str, vector: Vector, source: bytes) -> str:
    enrolled = collections.enroll_extraction(
        "staff", person, extraction(embedded(vector)), image_digest(source), EnrollOptions()
    )
    return enrolled.face.face_id


# Collections


def test_a_collection_is_pinned_to_the_serving_model_with_the_default_threshold(collections: Collections) -> None:
    info = collections.create("staff")
    assert (info.model_id, info.dimension, info.threshold) == (MODEL.id, DIMENSION, 0.5)
    assert (info.subjects, info.faces) == (0, 0)
    assert collections.create("guests", threshold=0.7).threshold == 0.7


@pytest.mark.parametrize("threshold", [-1.01, 1.5, float("nan")])
def test_a_threshold_outside_minus_one_to_one_is_refused(collections: Collections, threshold: float) -> None:
    with pytest.raises(FaceServiceError) as error:
        collections.create("staff", threshold=threshold)
    assert error.value.field == "threshold"
    assert collections.all() == []


@pytest.mark.parametrize("name", ["", "-lead", "a/b", "a b", "x" * 65, "é"])
def test_bad_collection_names_are_refused_before_the_store_is_asked(collections: Collections, name: str) -> None:
    with pytest.raises(FaceServiceError) as error:
        collections.create(name)
    assert code_of(error) == "invalid_collection_name"
    assert collections.all() == []


def test_deleting_a_collection_forgets_it(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    collections.delete("staff")
    assert collections.all() == []
    with pytest.raises(FaceServiceError) as error:
        collections.get("staff")
    assert code_of(error) == "collection_not_found"


# Enrollment


def test_enrolling_creates_the_subject_and_keeps_the_face(collections: Collections) -> None:
    collections.create("staff")
    face_id = enroll(collections, "ann", ANN, b"ann.jpg")
    subject, faces = collections.subject("staff", "ann")
    assert (subject.external_id, subject.faces) == ("ann", 1)
    assert [face.face_id for face in faces] == [face_id]
    assert faces[0].bbox == (10, 10, 110, 110)
    np.testing.assert_allclose(faces[0].embedding, ANN)


def test_the_same_image_for_the_same_subject_is_kept_once(collections: Collections) -> None:
    collections.create("staff")
    first = collections.enroll_extraction(
        "staff", "ann", extraction(embedded(ANN)), image_digest(b"ann.jpg"), EnrollOptions()
    )
    again = collections.enroll_extraction(
        "staff", "ann", extraction(embedded(ANN)), image_digest(b"ann.jpg"), EnrollOptions()
    )
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.face.face_id == first.face.face_id
    assert collections.get("staff").faces == 1


def test_an_image_without_a_face_is_refused(collections: Collections) -> None:
    collections.create("staff")
    with pytest.raises(FaceServiceError) as error:
        collections.enroll_extraction("staff", "ann", extraction(), image_digest(b"empty"), EnrollOptions())
    assert code_of(error) == "no_face"
    assert collections.get("staff").subjects == 0


def test_several_faces_are_refused_unless_the_largest_is_asked_for(collections: Collections) -> None:
    collections.create("staff")
    two_faces = extraction(embedded(ANN, side=120), count=2)  # the largest face, of two detected
    with pytest.raises(FaceServiceError) as error:
        collections.enroll_extraction("staff", "ann", two_faces, image_digest(b"pair"), EnrollOptions())
    assert code_of(error) == "multiple_faces"
    enrolled = collections.enroll_extraction(
        "staff", "ann", two_faces, image_digest(b"pair"), EnrollOptions(largest=True)
    )
    assert enrolled.face.bbox == (10, 10, 130, 130)


@pytest.mark.parametrize(
    ("face", "options", "code"),
    [
        (embedded(ANN, side=40), EnrollOptions(min_face_size=64), "face_too_small"),
        (embedded(ANN, confidence=0.6), EnrollOptions(min_confidence=0.8), "low_confidence"),
    ],
)
def test_quality_floors_refuse_poor_faces(
    collections: Collections, face: EmbeddedFace, options: EnrollOptions, code: str
) -> None:
    collections.create("staff")
    with pytest.raises(FaceServiceError) as error:
        collections.enroll_extraction("staff", "ann", extraction(face), image_digest(b"poor"), options)
    assert code_of(error) == code
    assert collections.get("staff").faces == 0


def test_enrollment_refuses_faces_under_medium_quality_by_default_with_the_reasons(collections: Collections) -> None:
    collections.create("staff")
    assert EnrollOptions().min_quality is DEFAULT_ENROLL_QUALITY is QualityLevel.MEDIUM
    with pytest.raises(PoorFace) as error:
        collections.enroll_extraction("staff", "ann", extraction(embedded(ANN, quality=LOW)), "a" * 64, EnrollOptions())
    assert error.value.code == "low_quality_face"
    assert error.value.reasons == (QualityReason.LOW_SHARPNESS, QualityReason.LOW_BRIGHTNESS)
    assert "low" in error.value.message and "LOW_SHARPNESS" in error.value.message
    assert collections.get("staff").faces == 0
    enrolled = collections.enroll_extraction(
        "staff", "ann", extraction(embedded(ANN, quality=MEDIUM)), "b" * 64, EnrollOptions()
    )
    assert enrolled.face.external_id == "ann" and collections.get("staff").faces == 1


@pytest.mark.parametrize(
    ("floor", "accepted"),
    [
        (None, ["low", "medium", "high", "unassessed"]),
        (QualityLevel.LOW, ["low", "medium", "high"]),
        (QualityLevel.MEDIUM, ["medium", "high"]),
        (QualityLevel.HIGH, ["high"]),
    ],
)
def test_each_quality_floor_lets_through_its_level_and_above(
    collections: Collections, floor: QualityLevel | None, accepted: list[str]
) -> None:
    collections.create("staff")
    faces = {"low": LOW, "medium": MEDIUM, "high": HIGH, "unassessed": None}
    enrolled = []
    for index, (name, quality) in enumerate(faces.items()):
        face = extraction(embedded(unit(1, index), quality=quality))
        try:
            collections.enroll_extraction(
                "staff", name, face, image_digest(name.encode()), EnrollOptions(min_quality=floor)
            )
            enrolled.append(name)
        except PoorFace as error:
            assert error.code == "low_quality_face"  # never another refusal
    assert enrolled == accepted
    assert sorted(s.external_id for s in collections.subjects("staff", None, 10)) == sorted(accepted)


def test_an_enrolled_embedding_has_no_quality_to_refuse(collections: Collections) -> None:
    collections.create("staff")  # the caller vouches for it, whatever the default floor
    assert collections.enroll_embedding("staff", "ann", ANN.tolist(), MODEL.id).duplicate is False


def test_a_face_of_another_model_never_enters_a_pinned_collection(collections: Collections, serving: Serving) -> None:
    collections.create("staff")
    serving.model = OTHER_MODEL  # the service was upgraded
    with pytest.raises(FaceServiceError) as error:
        enroll(collections, "ann", ANN, b"ann.jpg")
    assert code_of(error) == "model_mismatch"
    with pytest.raises(FaceServiceError) as error:
        collections.enroll_embedding("staff", "ann", ANN.tolist(), OTHER_MODEL.id)
    assert code_of(error) == "model_mismatch"
    assert collections.get("staff").faces == 0


def test_enrolling_an_embedding_checks_its_length_and_dedups_by_vector(collections: Collections) -> None:
    collections.create("staff")
    with pytest.raises(FaceServiceError):
        collections.enroll_embedding("staff", "ann", [1.0, 0.0], MODEL.id)
    first = collections.enroll_embedding("staff", "ann", ANN.tolist(), MODEL.id)
    again = collections.enroll_embedding("staff", "ann", ANN.tolist(), MODEL.id)
    assert (first.duplicate, again.duplicate, first.face.bbox) == (False, True, None)


def test_a_subject_holds_at_most_the_limit_of_faces(collections: Collections) -> None:
    collections.create("staff")
    for index in range(LIMITS.max_faces_per_subject):
        enroll(collections, "ann", unit(1, index * 0.1), f"ann-{index}".encode())
    with pytest.raises(FaceServiceError):
        enroll(collections, "ann", unit(1, 0.9), b"one too many")
    assert collections.subject("staff", "ann")[0].faces == LIMITS.max_faces_per_subject


# Identification and verification


def test_search_ranks_subjects_and_decides_against_the_threshold(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    result = collections.search_extraction("staff", extraction(embedded(ANN_AGAIN), embedded(CAT)))
    ann_probe, stranger_probe = result.probes
    assert [hit.external_id for hit in ann_probe.hits] == ["ann", "bob"]
    assert ann_probe.decision.match and ann_probe.decision.external_id == "ann"
    assert ann_probe.decision.similarity == pytest.approx(float(ANN @ ANN_AGAIN), abs=1e-6)
    assert not stranger_probe.decision.match and stranger_probe.decision.external_id is None
    assert result.searched == 2


def test_each_subject_appears_once_with_its_best_face(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann-1.jpg")
    best = enroll(collections, "ann", ANN_AGAIN, b"ann-2.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    (probe,) = collections.search_embedding("staff", ANN_AGAIN.tolist(), MODEL.id).probes
    assert [hit.external_id for hit in probe.hits] == ["ann", "bob"]
    assert probe.hits[0].face_id == best


@pytest.mark.parametrize("top_k", [0, RULES.max_top_k + 1])
def test_top_k_outside_its_bounds_is_refused(collections: Collections, top_k: int) -> None:
    collections.create("staff")
    with pytest.raises(FaceServiceError) as error:
        collections.search_embedding("staff", ANN.tolist(), MODEL.id, top_k)
    assert error.value.field == "top_k"


def test_an_image_without_faces_searches_nothing(collections: Collections) -> None:
    collections.create("staff")
    assert collections.search_extraction("staff", extraction()).probes == []


def test_search_skips_probe_faces_under_min_quality_and_reports_them(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    faces = extraction(embedded(ANN_AGAIN, quality=HIGH), embedded(BOB, side=50, quality=LOW))
    everyone = collections.search_extraction("staff", faces)
    assert [p.decision.external_id for p in everyone.probes] == ["ann", "bob"] and everyone.skipped == []
    filtered = collections.search_extraction("staff", faces, min_quality=QualityLevel.MEDIUM)
    assert [p.decision.external_id for p in filtered.probes] == ["ann"]
    assert filtered.probes[0].face is faces.faces[0].face
    assert filtered.skipped == [faces.faces[1].face]  # with its quality, never searched


def test_search_with_every_probe_face_under_min_quality_searches_nothing(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    faces = extraction(embedded(ANN, quality=MEDIUM), embedded(ANN_AGAIN, quality=None))
    result = collections.search_extraction("staff", faces, min_quality=QualityLevel.HIGH)
    assert result.probes == [] and result.skipped == [face.face for face in faces.faces]


def test_verify_compares_with_the_subjects_best_face_only(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    same = collections.verify_extraction("staff", "ann", extraction(embedded(ANN_AGAIN)))
    other = collections.verify_embedding("staff", "bob", ANN_AGAIN.tolist(), MODEL.id)
    assert same.match and not other.match
    assert other.similarity == pytest.approx(float(BOB @ ANN_AGAIN), abs=1e-6)
    with pytest.raises(FaceServiceError) as error:
        collections.verify_extraction("staff", "ann", extraction())
    assert code_of(error) == "no_face"


# Forgetting


def test_a_deleted_subject_is_never_found_again(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    assert collections.delete_subject("staff", "ann") == 1
    (probe,) = collections.search_embedding("staff", ANN.tolist(), MODEL.id).probes
    assert [hit.external_id for hit in probe.hits] == ["bob"]
    assert [face.external_id for face in collections.export("staff")[1]] == ["bob"]


def test_deleting_a_subjects_last_face_removes_the_subject(collections: Collections) -> None:
    collections.create("staff")
    face_id = enroll(collections, "ann", ANN, b"ann.jpg")
    removed = collections.delete_face("staff", face_id)
    assert removed.external_id == "ann"
    assert collections.subjects("staff", None, 10) == []


# Export and import


def test_an_export_imports_into_a_new_collection_pinned_to_its_model(collections: Collections) -> None:
    collections.create("staff")
    enroll(collections, "ann", ANN, b"ann.jpg")
    enroll(collections, "bob", BOB, b"bob.jpg")
    header, faces = collections.export("staff")
    exported = list(faces)
    collections.import_header("copy", header)
    records = [collections.import_face(header, face, line) for line, face in enumerate(exported, start=2)]
    outcome = collections.import_faces("copy", header, records)
    assert (outcome.created, outcome.added, outcome.duplicates) == (True, 2, 0)
    copy = collections.get("copy")
    assert (copy.model_id, copy.threshold, copy.faces) == (MODEL.id, 0.5, 2)
    # Imported faces get new ids; importing the same export again adds nothing.
    assert {f.face_id for f in collections.export("copy")[1]}.isdisjoint({f.face_id for f in exported})
    again = collections.import_faces("copy", header, records)
    assert (again.created, again.added, again.duplicates) == (False, 0, 2)


def test_an_export_of_another_model_is_refused(collections: Collections) -> None:
    collections.create("staff")
    header = CollectionHeader("elsewhere", OTHER_MODEL.id, DIMENSION, 0.5)
    record = FaceRecord("0" * 32, "ann", ANN, None, None, image_digest(b"x"), MOMENT)
    with pytest.raises(FaceServiceError) as error:
        collections.import_faces("staff", header, [record])
    assert code_of(error) == "model_mismatch"
    assert collections.get("staff").faces == 0
