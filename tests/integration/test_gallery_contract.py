"""The FaceGallery port's contract, on every store (memory, SQLite, PostgreSQL), then what each store
promises besides: SQLite's deletes leave no bytes and its acknowledged writes survive SIGKILL;
PostgreSQL's partitions, replicas and failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from adapters.stores.matrix import quantize
from adapters.stores.memory import MemoryGallery
from adapters.stores.postgres.gallery import PostgresGallery
from adapters.stores.postgres.schema import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from adapters.stores.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from adapters.stores.sqlite import SqliteGallery
from adapters.stores.sqlite_sql import MIGRATIONS as SQLITE_MIGRATIONS
from domain.errors import (
    CollectionExists,
    CollectionNotFound,
    CollectionUnavailable,
    FaceNotFound,
    FaceServiceError,
    GalleryLimitExceeded,
    InvalidEmbedding,
    InvalidInput,
    StoreUnavailable,
    SubjectNotFound,
)
from domain.gallery import FaceRecord, GalleryLimits, StoredQuality
from domain.ports import FaceGallery
from domain.quality import QualityLevel, QualityReason
from tests.support.paths import ROOT
from tests.support.pg import create_database, postgres_server

LIMITS = GalleryLimits(
    max_collections=20, max_subjects_per_collection=10_000, max_faces_per_subject=200, max_faces_per_collection=100_000
)
DIM = 64
MODEL = "buffalo_s:0123abcd"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LANDMARKS = ((40.5, 60.25), (80.0, 60.0), (60.125, 85.5), (45.0, 110.0), (75.5, 110.75))
QUALITY = StoredQuality(QualityLevel.MEDIUM, 0.6125, (QualityReason.LOW_SHARPNESS, QualityReason.EXTREME_POSE))

Maker = Callable[..., Any]


def unit(rng: np.random.Generator, n: int, dimension: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def face(
    external_id: str,
    vector: np.ndarray,
    digest: str | None = None,
    created_at: datetime | None = None,
    bbox: tuple[float, float, float, float] | None = (10.0, 20.0, 110.5, 140.25),
) -> FaceRecord:
    return FaceRecord(
        face_id=uuid.uuid4().hex,
        external_id=external_id,
        embedding=vector.astype(np.float32),
        bbox=bbox,
        confidence=None if bbox is None else 0.875,
        source_digest=digest or uuid.uuid4().hex + uuid.uuid4().hex,
        created_at=created_at or datetime.now(UTC),
        landmarks=None if bbox is None else LANDMARKS,
        quality=None if bbox is None else QUALITY,
    )


def same_face(a: FaceRecord, b: FaceRecord) -> bool:
    return (
        a.face_id == b.face_id
        and a.external_id == b.external_id
        and np.array_equal(np.asarray(a.embedding, dtype=np.float32), np.asarray(b.embedding, dtype=np.float32))
        and a.bbox == b.bbox
        and a.confidence == b.confidence
        and a.source_digest == b.source_digest
        and a.created_at == b.created_at
        and a.landmarks == b.landmarks
        and a.quality == b.quality
    )


def truth(probes: np.ndarray, vectors: np.ndarray, owners: list[str], ids: list[str], top_k: int) -> list[list[Any]]:
    """Per probe, the best `top_k` (external_id, face_id, similarity) by brute force."""
    scores = probes @ vectors.T
    out = []
    for row in scores:
        best: dict[str, tuple[float, str]] = {}
        for index, score in enumerate(row):
            if owners[index] not in best or score > best[owners[index]][0]:
                best[owners[index]] = (float(score), ids[index])
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:top_k]
        out.append([(name, face_id, score) for name, (score, face_id) in ranked])
    return out


def clear_postgres(url: str) -> None:
    gallery = PostgresGallery(url, LIMITS)
    try:
        for name in [c.name for c in gallery.collections()] + [q.name for q in gallery.health().quarantined]:
            gallery.delete_collection(name)
    finally:
        gallery.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def make_gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Maker]:
    """Opens galleries of one kind on one place (a new SQLite file, the tests' emptied database)."""
    kind = request.param
    opened: list[FaceGallery] = []
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    if url:
        clear_postgres(url)

    def make(limits: GalleryLimits = LIMITS, **options: Any) -> FaceGallery:
        gallery: FaceGallery
        if kind == "memory":
            gallery = MemoryGallery(limits)
        elif kind == "sqlite":
            gallery = SqliteGallery(tmp_path / "gallery" / "faces.sqlite3", limits)
        else:
            gallery = PostgresGallery(url, limits, **options)
        opened.append(gallery)
        return gallery

    yield make
    for gallery in opened:
        gallery.close()
    if url:
        clear_postgres(url)


@pytest.fixture
def gallery(make_gallery: Maker) -> FaceGallery:
    gallery: FaceGallery = make_gallery()
    return gallery


# --- collections


def test_collections_are_created_listed_counted_and_deleted(gallery: FaceGallery) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = gallery.create_collection("staff", MODEL, DIM, 0.35)
    gallery.create_collection("guests", MODEL, 128, 0.4)
    assert (created.name, created.model_id, created.dimension, created.threshold) == ("staff", MODEL, DIM, 0.35)
    assert (created.subjects, created.faces) == (0, 0)
    assert before <= created.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert [c.name for c in gallery.collections()] == ["guests", "staff"]
    assert gallery.collection("staff") == created

    rng = np.random.default_rng(1)
    vectors = unit(rng, 3)
    for index, name in enumerate(["ann", "ann", "bob"]):
        gallery.add_face("staff", face(name, vectors[index]))
    info = gallery.collection("staff")
    assert (info.subjects, info.faces) == (2, 3)
    assert {c.name: (c.subjects, c.faces) for c in gallery.collections()} == {"guests": (0, 0), "staff": (2, 3)}

    gallery.delete_collection("staff")
    assert [c.name for c in gallery.collections()] == ["guests"]
    with pytest.raises(CollectionNotFound):
        gallery.collection("staff")
    with pytest.raises(CollectionNotFound):
        gallery.delete_collection("staff")
    # The name is free again, and the new collection starts empty.
    assert gallery.create_collection("staff", MODEL, DIM, 0.35).faces == 0
    assert gallery.subjects("staff", None, 10) == []


def test_an_existing_name_is_refused(gallery: FaceGallery) -> None:
    gallery.create_collection("staff", MODEL, DIM, 0.35)
    with pytest.raises(CollectionExists) as raised:
        gallery.create_collection("staff", "other:model", 128, 0.5)
    assert raised.value.code == "collection_exists"
    assert gallery.collection("staff").dimension == DIM


# --- limits


def test_collection_limit(make_gallery: Maker) -> None:
    gallery = make_gallery(GalleryLimits(2, 10, 10, 10))
    gallery.create_collection("a", MODEL, DIM, 0.3)
    gallery.create_collection("b", MODEL, DIM, 0.3)
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.create_collection("c", MODEL, DIM, 0.3)
    assert raised.value.code == "collection_limit"
    gallery.delete_collection("a")
    gallery.create_collection("c", MODEL, DIM, 0.3)
    assert [c.name for c in gallery.collections()] == ["b", "c"]


def test_subject_limit(make_gallery: Maker) -> None:
    gallery = make_gallery(GalleryLimits(5, 2, 10, 100))
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(2), 4)
    gallery.add_face("c", face("ann", vectors[0]))
    gallery.add_face("c", face("bob", vectors[1]))
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.add_face("c", face("cat", vectors[2]))
    assert raised.value.code == "subject_limit"
    gallery.add_face("c", face("ann", vectors[3]))  # an existing subject may still grow
    assert [s.external_id for s in gallery.subjects("c", None, 10)] == ["ann", "bob"]
    assert gallery.collection("c").faces == 3


def test_subject_face_limit(make_gallery: Maker) -> None:
    gallery = make_gallery(GalleryLimits(5, 10, 2, 100))
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(3), 4)
    first, _ = gallery.add_face("c", face("ann", vectors[0], digest="d0"))
    gallery.add_face("c", face("ann", vectors[1], digest="d1"))
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.add_face("c", face("ann", vectors[2], digest="d2"))
    assert raised.value.code == "subject_face_limit"
    again, duplicate = gallery.add_face("c", face("ann", vectors[0], digest="d0"))  # a duplicate is no new face
    assert duplicate and again.face_id == first.face_id
    gallery.add_face("c", face("bob", vectors[3]))
    assert {s.external_id: s.faces for s in gallery.subjects("c", None, 10)} == {"ann": 2, "bob": 1}


def test_collection_face_limit(make_gallery: Maker) -> None:
    gallery = make_gallery(GalleryLimits(5, 10, 10, 3))
    gallery.create_collection("c", MODEL, DIM, 0.3)
    gallery.create_collection("d", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(4), 5)
    for index, name in enumerate(["ann", "ann", "bob"]):
        gallery.add_face("c", face(name, vectors[index]))
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.add_face("c", face("cat", vectors[3]))
    assert raised.value.code == "collection_face_limit"
    with pytest.raises(GalleryLimitExceeded):
        gallery.add_face("c", face("ann", vectors[3]))
    gallery.add_face("d", face("cat", vectors[4]))  # the limit is per collection
    assert (gallery.collection("c").faces, gallery.collection("c").subjects) == (3, 2)


# --- faces and subjects


def test_add_face_creates_the_subject_and_a_repeated_source_returns_the_stored_face(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(5), 3)
    sent = face("ann", vectors[0], digest="a" * 64)
    stored, duplicate = gallery.add_face("c", sent)
    assert not duplicate and same_face(stored, sent)
    info, faces = gallery.subject("c", "ann")
    assert (info.external_id, info.faces, info.created_at) == ("ann", 1, sent.created_at)
    assert len(faces) == 1 and same_face(faces[0], sent)

    # Same subject, same source: nothing stored, the first face back.
    again, duplicate = gallery.add_face("c", face("ann", vectors[1], digest="a" * 64))
    assert duplicate and same_face(again, sent)
    # The same source for another subject is that subject's own face.
    other, duplicate = gallery.add_face("c", face("bob", vectors[0], digest="a" * 64))
    assert not duplicate and other.external_id == "bob"
    # Enrolled from an embedding: no box, no confidence.
    bare, _ = gallery.add_face("c", face("ann", vectors[2], bbox=None))
    assert bare.bbox is None and bare.confidence is None
    assert [f.bbox for f in gallery.subject("c", "ann")[1]] == [sent.bbox, None]
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (2, 3)


def test_subjects_are_paged_by_external_id(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    names = [f"person-{i:02d}" for i in range(23)] + ["Zed", "_under", "émile", "Ärger", "a b"]
    rng = np.random.default_rng(6)
    for index, name in enumerate(reversed(names)):
        gallery.add_face("c", face(name, unit(rng, 1)[0]))
        if index % 5 == 0:
            gallery.add_face("c", face(name, unit(rng, 1)[0]))
    pages, after = [], None
    while page := gallery.subjects("c", after, 10):
        assert len(page) <= 10
        pages.append(page)
        after = page[-1].external_id
    listed = [subject.external_id for page in pages for subject in page]
    assert listed == sorted(names)  # code point order, whatever the database's collation
    assert len(pages) == 3
    counts = {subject.external_id: subject.faces for page in pages for subject in page}
    assert sum(counts.values()) == gallery.collection("c").faces
    assert gallery.subjects("c", sorted(names)[-1], 10) == []
    assert [s.external_id for s in gallery.subjects("c", "person-20", 2)] == ["person-21", "person-22"]
    assert gallery.subjects("c", None, 0) == []


def test_a_subjects_faces_come_oldest_first(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(7), 4)
    order = [2, 0, 3, 1]  # enrolled out of time order (an import keeps the original times)
    sent = {i: face("ann", vectors[i], created_at=T0 + timedelta(minutes=i)) for i in order}
    for i in order:
        gallery.add_face("c", sent[i])
    info, faces = gallery.subject("c", "ann")
    assert [f.face_id for f in faces] == [sent[i].face_id for i in range(4)]
    assert info.faces == 4 and info.created_at == sent[2].created_at  # the subject began with its first face
    assert all(same_face(got, sent[i]) for i, got in enumerate(faces))


def test_delete_subject_removes_it_and_all_its_faces(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(8), 6)
    owners = ["ann", "ann", "ann", "bob", "bob", "cat"]
    for vector, name in zip(vectors, owners, strict=True):
        gallery.add_face("c", face(name, vector))
    assert gallery.delete_subject("c", "ann") == 3
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (2, 3)
    with pytest.raises(SubjectNotFound):
        gallery.subject("c", "ann")
    with pytest.raises(SubjectNotFound):
        gallery.delete_subject("c", "ann")
    assert [s.external_id for s in gallery.subjects("c", None, 10)] == ["bob", "cat"]
    assert {f.external_id for f in gallery.faces("c")} == {"bob", "cat"}
    hits = gallery.search("c", vectors[:3], top_k=5).hits
    assert all(hit.external_id != "ann" for row in hits for hit in row)
    assert all(len(row) == 2 for row in hits)
    # The subject can be enrolled again, from scratch.
    gallery.add_face("c", face("ann", vectors[0]))
    assert gallery.subject("c", "ann")[0].faces == 1


def test_delete_face_removes_one_face_and_the_subject_with_its_last(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(9), 3)
    ann1, _ = gallery.add_face("c", face("ann", vectors[0], digest="x"))
    ann2, _ = gallery.add_face("c", face("ann", vectors[1]))
    bob, _ = gallery.add_face("c", face("bob", vectors[2]))

    removed = gallery.delete_face("c", ann1.face_id)
    assert same_face(removed, ann1)
    info, faces = gallery.subject("c", "ann")
    assert info.faces == 1 and [f.face_id for f in faces] == [ann2.face_id]
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (2, 2)
    with pytest.raises(FaceNotFound):
        gallery.delete_face("c", ann1.face_id)
    # Its source may be enrolled again now.
    assert gallery.add_face("c", face("ann", vectors[0], digest="x"))[1] is False

    gallery.delete_face("c", bob.face_id)  # bob's last face: bob is gone
    with pytest.raises(SubjectNotFound):
        gallery.subject("c", "bob")
    assert [s.external_id for s in gallery.subjects("c", None, 10)] == ["ann"]
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (1, 2)
    with pytest.raises(FaceNotFound):
        gallery.delete_face("c", uuid.uuid4().hex)


def test_a_face_of_another_collection_is_not_found(gallery: FaceGallery) -> None:
    gallery.create_collection("a", MODEL, DIM, 0.3)
    gallery.create_collection("b", MODEL, DIM, 0.3)
    stored, _ = gallery.add_face("a", face("ann", unit(np.random.default_rng(10), 1)[0]))
    with pytest.raises(FaceNotFound):
        gallery.delete_face("b", stored.face_id)
    assert gallery.collection("a").faces == 1


# --- search


def enrol(gallery: FaceGallery, name: str, vectors: np.ndarray, owners: list[str]) -> list[str]:
    return [
        gallery.add_face(name, face(owner, vector))[0].face_id for vector, owner in zip(vectors, owners, strict=True)
    ]


def test_search_finds_each_subject_once_with_its_best_face(gallery: FaceGallery) -> None:
    rng = np.random.default_rng(11)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(rng, 300)
    owners = [f"s{int(i):02d}" for i in rng.integers(0, 60, 300)]
    ids = enrol(gallery, "c", vectors, owners)
    # Probes near some enrolled faces, and random ones.
    near = vectors[[3, 150, 299]] + 0.4 * unit(rng, 3)
    probes = np.vstack([near / np.linalg.norm(near, axis=1, keepdims=True), unit(rng, 4)])

    outcome = gallery.search("c", probes, top_k=5)
    assert outcome.method == "exact" and outcome.searched == 300
    expected = truth(probes, vectors, owners, ids, 5)
    assert len(outcome.hits) == len(probes)
    for row, wanted in zip(outcome.hits, expected, strict=True):
        assert [(h.external_id, h.face_id) for h in row] == [(name, face_id) for name, face_id, _ in wanted]
        assert np.allclose([h.similarity for h in row], [score for _, _, score in wanted], atol=1e-5)
        assert len({h.external_id for h in row}) == len(row) == 5
    assert outcome.hits[0][0].face_id == ids[3] and outcome.hits[1][0].face_id == ids[150]

    everyone = gallery.search("c", probes[:1], top_k=1000)  # more than there are subjects: each one once
    assert len(everyone.hits[0]) == len(set(owners))
    assert [h.external_id for h in everyone.hits[0]] == [
        name for name, _, _ in truth(probes[:1], vectors, owners, ids, 1000)[0]
    ]
    single = gallery.search("c", probes[0], top_k=2)  # one probe as a vector
    assert [h.face_id for h in single.hits[0]] == [face_id for _, face_id, _ in expected[0][:2]]


def test_search_restricted_to_one_subject(gallery: FaceGallery) -> None:
    rng = np.random.default_rng(12)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(rng, 40)
    owners = [f"s{i % 8}" for i in range(40)]
    ids = enrol(gallery, "c", vectors, owners)
    probes = unit(rng, 3)
    outcome = gallery.search("c", probes, top_k=5, external_id="s3")
    assert outcome.searched == 5 and outcome.method == "exact"
    mine = [i for i, owner in enumerate(owners) if owner == "s3"]
    for probe, row in zip(probes, outcome.hits, strict=True):
        scores = vectors[mine] @ probe
        assert len(row) == 1 and row[0].external_id == "s3"
        assert row[0].face_id == ids[mine[int(np.argmax(scores))]]
        assert row[0].similarity == pytest.approx(float(scores.max()), abs=1e-5)
    with pytest.raises(SubjectNotFound):
        gallery.search("c", probes, top_k=5, external_id="nobody")


def test_search_of_an_empty_collection(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    outcome = gallery.search("c", unit(np.random.default_rng(13), 2), top_k=3)
    assert outcome.hits == [[], []] and outcome.searched == 0


def test_vectors_of_the_wrong_dimension_are_refused(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(14)
    with pytest.raises(InvalidEmbedding):
        gallery.add_face("c", face("ann", unit(rng, 1, DIM + 1)[0]))
    with pytest.raises(InvalidEmbedding):
        gallery.search("c", unit(rng, 1, DIM - 1), top_k=1)
    assert gallery.collection("c").faces == 0


# --- export


def test_faces_streams_every_face_in_a_stable_order(gallery: FaceGallery) -> None:
    rng = np.random.default_rng(15)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    gallery.create_collection("other", MODEL, DIM, 0.3)
    vectors = unit(rng, 1100)  # more than one page of the SQL stores' export
    sent = [face(f"s{i % 37}", vectors[i]) for i in range(1100)]
    bulk: Any = gallery  # every store has the bulk path, add_faces; the port only add_face
    bulk.add_faces("c", sent[:600])
    for record in sent[600:640]:
        gallery.add_face("c", record)
    bulk.add_faces("c", sent[640:])
    gallery.add_face("other", face("x", vectors[0]))
    streamed = gallery.faces("c")
    assert iter(streamed) is streamed  # an iterator, read as it goes
    got = list(streamed)
    assert len(got) == 1100
    assert all(same_face(a, b) for a, b in zip(got, sent, strict=True))  # enrolment order
    assert [f.face_id for f in gallery.faces("c")] == [f.face_id for f in got]


def test_add_faces_stores_all_or_none(make_gallery: Maker) -> None:
    """The bulk path (not in the port; imports and the benchmark use it) keeps add_face's rules."""
    gallery = make_gallery(GalleryLimits(5, 10, 10, 3))
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(16), 5)
    results = gallery.add_faces("c", [face("ann", vectors[0], digest="d"), face("ann", vectors[1], digest="d")])
    assert [duplicate for _, duplicate in results] == [False, True]
    assert results[1][0].face_id == results[0][0].face_id
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.add_faces("c", [face("bob", vectors[2]), face("cat", vectors[3]), face("dan", vectors[4])])
    assert raised.value.code == "collection_face_limit"
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (1, 1)
    assert [f.face_id for f in gallery.faces("c")] == [results[0][0].face_id]
    # A batch's sources already stored answer the stored face, the others are added, each once.
    again = gallery.add_faces(
        "c",
        [face("bob", vectors[2], digest="b"), face("ann", vectors[3], digest="d"), face("bob", vectors[4], digest="b")],
    )
    assert [duplicate for _, duplicate in again] == [False, True, True]
    assert again[1][0].face_id == results[0][0].face_id and again[2][0].face_id == again[0][0].face_id
    assert (gallery.collection("c").subjects, gallery.collection("c").faces) == (2, 2)


# --- nothing is written that a store could not read back and serve

UNSERVABLE_COLLECTIONS = [  # each refused before anything is written
    ("acme\n", MODEL, DIM, 0.3),
    ("", MODEL, DIM, 0.3),
    ("..", MODEL, DIM, 0.3),
    ("c", MODEL, -5, 0.3),
    ("c", MODEL, 0, 0.3),
    ("c", MODEL, 100_000_000, 0.3),
    ("c", MODEL, DIM, 99.0),
    ("c", MODEL, DIM, float("nan")),
    ("c", MODEL, DIM, float("-inf")),
    ("c", "", DIM, 0.3),
    ("c", "buffalo_s:1234abcd\n", DIM, 0.3),
]


def test_a_collection_no_store_could_serve_is_never_written(make_gallery: Maker) -> None:
    gallery = make_gallery()
    for values in UNSERVABLE_COLLECTIONS:
        with pytest.raises(InvalidInput) as raised:
            gallery.create_collection(*values)
        assert raised.value.code == "invalid_collection", values
    assert gallery.collections() == [] and gallery.health().quarantined == ()
    gallery.close()
    reopened = make_gallery()  # the same file or database: nothing to read back
    assert reopened.collections() == [] and reopened.health().quarantined == ()


def test_a_face_no_store_could_serve_is_never_written(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vector = unit(np.random.default_rng(40), 1)[0]
    poisoned = vector.copy()
    poisoned[3] = np.nan
    bad = [
        face("ann", poisoned),
        face("ann", vector, bbox=(0.0, 0.0, float("inf"), 1.0)),
        FaceRecord("not-a-face-id", "ann", vector, None, None, "d" * 64, T0),
        FaceRecord(uuid.uuid4().hex, "x" * 129, vector, None, None, "d" * 64, T0),
        FaceRecord(uuid.uuid4().hex, "ann\x00", vector, None, None, "d" * 64, T0),  # text no store can look up
        FaceRecord(uuid.uuid4().hex, "ann", vector, None, None, "d\x00", T0),
        replace(face("ann", vector), landmarks=LANDMARKS[:4]),  # type: ignore[arg-type]
        replace(face("ann", vector), landmarks=((1.0, float("nan")), *LANDMARKS[1:])),
        replace(face("ann", vector), quality=replace(QUALITY, score=1.5)),
        replace(face("ann", vector), quality=replace(QUALITY, score=float("nan"))),
        replace(face("ann", vector), quality=replace(QUALITY, level="great")),
        replace(face("ann", vector), quality=replace(QUALITY, reasons=("BLURRY",))),
    ]
    for record in bad:
        with pytest.raises(FaceServiceError) as raised:
            gallery.add_face("c", record)
        assert raised.value.code in ("invalid_embedding", "invalid_request", "invalid_face_id", "invalid_external_id")
    assert gallery.collection("c").faces == 0 and list(gallery.faces("c")) == []


# Rows written behind the store's back (by hand, by an older release): what each store must survive.
CORRUPTIONS = {
    "sqlite": [
        ("bad-dimension", "UPDATE collections SET dimension = -5 WHERE name = 'bad-dimension'"),
        ("bad-threshold", "UPDATE collections SET threshold = 99 WHERE name = 'bad-threshold'"),
        ("bad-model", "UPDATE collections SET model_id = '' WHERE name = 'bad-model'"),
        ("bad-type", "UPDATE collections SET dimension = 'many' WHERE name = 'bad-type'"),
        ("acme\n", "UPDATE collections SET name = 'acme' || char(10) WHERE name = 'bad-name'"),
        (
            "bad-vector",
            "UPDATE faces SET embedding = substr(embedding, 1, 10)"
            " WHERE collection_id = (SELECT id FROM collections WHERE name = 'bad-vector')",
        ),
    ],
    "postgresql": [
        ("bad-dimension", "UPDATE gallery_collections SET dimension = 100000000 WHERE name = 'bad-dimension'"),
        ("bad-threshold", "UPDATE gallery_collections SET threshold = 'NaN' WHERE name = 'bad-threshold'"),
        ("bad-model", "UPDATE gallery_collections SET model_id = '' WHERE name = 'bad-model'"),
        ("bad-type", "UPDATE gallery_collections SET faces = -3 WHERE name = 'bad-type'"),
        ("acme\n", "UPDATE gallery_collections SET name = 'acme' || chr(10) WHERE name = 'bad-name'"),
        (
            "bad-vector",
            "DO $$ BEGIN EXECUTE format('DROP TABLE gallery_faces_%s',"
            " (SELECT id FROM gallery_collections WHERE name = 'bad-vector')); END $$",
        ),
    ],
}


def corrupt(kind: str, place: str, statements: list[str]) -> None:
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(place) as db:
            for statement in statements:
                db.execute(statement)
    else:
        with psycopg.connect(place, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_corrupt_collection_is_quarantined_and_the_others_served(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every collection row corrupted behind the store's back, one way each: the store still opens,
    serves the good collection, reports each broken one, answers it CollectionUnavailable, and lets
    an operator delete it."""
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    place = url or str(tmp_path / "faces.sqlite3")

    def open_store() -> FaceGallery:
        return PostgresGallery(url, LIMITS) if url else SqliteGallery(Path(place), LIMITS)

    if url:
        clear_postgres(url)
    corruptions = CORRUPTIONS[kind]
    rng = np.random.default_rng(41)
    gallery = open_store()
    for name in ["good", "bad-dimension", "bad-threshold", "bad-model", "bad-type", "bad-name", "bad-vector"]:
        gallery.create_collection(name, MODEL, DIM, 0.3)
        gallery.add_face(name, face("ann", unit(rng, 1)[0]))
    probe = unit(rng, 1)
    expected = gallery.search("good", probe, top_k=1).hits
    gallery.close()
    corrupt(kind, place, [statement for _, statement in corruptions])

    gallery = open_store()  # the start: it must not die on them
    try:
        assert [c.name for c in gallery.collections()] == ["good"]
        assert gallery.search("good", probe, top_k=1).hits == expected
        gallery.add_face("good", face("bob", unit(rng, 1)[0]))
        health = gallery.health()
        assert health.ok and sorted(q.name for q in health.quarantined) == sorted(name for name, _ in corruptions)
        assert all(q.reason and "/" not in q.reason for q in health.quarantined)
        for name in ("bad-dimension", "bad-threshold", "bad-model", "bad-type", "bad-vector"):
            calls: list[Callable[[str], object]] = [
                gallery.collection,
                lambda name: gallery.search(name, probe, top_k=1),
                lambda name: gallery.add_face(name, face("cat", unit(rng, 1)[0])),
                lambda name: gallery.subjects(name, None, 10),
                lambda name: gallery.create_collection(name, MODEL, DIM, 0.3),
            ]
            for call in calls:
                with pytest.raises(CollectionUnavailable) as raised:
                    call(name)
                assert raised.value.code == "collection_unavailable"
        gallery.delete_collection("bad-dimension")  # an operator's way out
        assert "bad-dimension" not in {q.name for q in gallery.health().quarantined}
        with pytest.raises(CollectionNotFound):
            gallery.collection("bad-dimension")
    finally:
        gallery.close()
    reopened = open_store()
    try:
        assert [c.name for c in reopened.collections()] == ["good"] and reopened.collection("good").faces == 2
        assert len(reopened.health().quarantined) == len(corruptions) - 1
    finally:
        reopened.close()
        if url:
            clear_postgres(url)


# --- imports: one transaction, all or nothing


def failing_after(records: list[FaceRecord], count: int) -> Iterator[FaceRecord]:
    """The records, then an error after `count` of them (a bad line far into an import)."""
    for index, record in enumerate(records):
        if index == count:
            raise InvalidInput("line 602: a bad line", code="invalid_import")
        yield record


def test_an_import_is_stored_whole_or_not_at_all(make_gallery: Maker) -> None:
    gallery = make_gallery(GalleryLimits(5, 10_000, 10, 2_000))
    rng = np.random.default_rng(43)
    records = [face(f"s{i % 300}", vector) for i, vector in enumerate(unit(rng, 1_200))]

    with pytest.raises(InvalidInput):  # 600 good faces, then a bad one: a new collection is not created
        gallery.import_collection("new", MODEL, DIM, 0.3, failing_after(records, 600))
    assert gallery.collections() == []
    with pytest.raises(InvalidInput):  # nor with a bad first face
        gallery.import_collection("new", MODEL, DIM, 0.3, failing_after(records, 0))
    assert gallery.collections() == []

    outcome = gallery.import_collection("new", MODEL, DIM, 0.3, records[:700])
    assert (outcome.created, outcome.added, outcome.duplicates) == (True, 700, 0)
    info = gallery.collection("new")
    assert (info.model_id, info.dimension, info.threshold, info.subjects, info.faces) == (MODEL, DIM, 0.3, 300, 700)
    probe = records[5].embedding[None, :]
    assert gallery.search("new", probe, top_k=1).hits[0][0].face_id == records[5].face_id

    with pytest.raises(InvalidInput):  # into an existing collection: it stays as it was
        gallery.import_collection("new", MODEL, DIM, 0.3, failing_after(records[700:], 400))
    with pytest.raises(GalleryLimitExceeded):  # the limit is reached part-way: nothing kept either
        gallery.import_collection("new", MODEL, DIM, 0.3, [face(f"t{i}", v) for i, v in enumerate(unit(rng, 1_400))])
    assert gallery.collection("new").faces == 700 and len(list(gallery.faces("new"))) == 700
    assert gallery.search("new", probe, top_k=1).searched == 700

    again = gallery.import_collection("new", MODEL, DIM, 0.3, records)  # a repeat completes it
    assert (again.created, again.added, again.duplicates) == (False, 500, 700)
    assert gallery.collection("new").faces == 1_200
    with pytest.raises(FaceServiceError) as mismatch:
        gallery.import_collection("new", "other:model", DIM, 0.3, records[:1])
    assert mismatch.value.code == "model_mismatch"
    with pytest.raises(FaceServiceError) as dimension:
        gallery.import_collection("new", MODEL, DIM * 2, 0.3, [])
    assert dimension.value.code == "model_mismatch"
    with pytest.raises(InvalidInput):  # its values are checked before anything is written
        gallery.import_collection("bad", MODEL, -5, 0.3, [])
    assert [c.name for c in gallery.collections()] == ["new"]
    empty = gallery.import_collection("empty", MODEL, DIM, 0.3, [])  # a header alone: an empty collection
    assert (empty.created, gallery.collection("empty").faces) == (True, 0)


KILLED_IMPORT = """
import sys, time, uuid
from datetime import UTC, datetime
from pathlib import Path
import numpy as np
from adapters.stores.postgres.gallery import PostgresGallery
from adapters.stores.postgres.schema import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from adapters.stores.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from adapters.stores.sqlite_sql import MIGRATIONS as SQLITE_MIGRATIONS
from adapters.stores.sqlite import SqliteGallery
from domain.gallery import FaceRecord, GalleryLimits, StoredQuality
from domain.quality import QualityLevel, QualityReason

kind, place = sys.argv[1], sys.argv[2]
limits = GalleryLimits(20, 100_000, 200, 100_000)
gallery = SqliteGallery(Path(place), limits) if kind == "sqlite" else PostgresGallery(place, limits)
rng = np.random.default_rng(7)

def faces():
    for i in range(100_000):
        if i == 3_000:  # well inside the transaction: thousands of faces written, none committed
            print("inside", flush=True)
            time.sleep(60)
        vector = rng.standard_normal(64).astype(np.float32)
        yield FaceRecord(uuid.uuid4().hex, f"s{i % 50}", vector / np.linalg.norm(vector), None, None,
                         uuid.uuid4().hex * 2, datetime.now(UTC))

gallery.import_collection(sys.argv[3], "buffalo_s:0123abcd", 64, 0.3, faces())
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_import_killed_mid_transaction_leaves_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGKILL while an import's transaction has written 3,000 faces: after a restart the new
    collection does not exist, and an existing one is as it was."""
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    place = url or str(tmp_path / "faces.sqlite3")

    def open_store() -> FaceGallery:
        return PostgresGallery(url, LIMITS) if url else SqliteGallery(Path(place), LIMITS)

    if url:
        clear_postgres(url)
    gallery = open_store()
    gallery.create_collection("kept", MODEL, 64, 0.3)
    gallery.add_face("kept", face("ann", unit(np.random.default_rng(44), 1)[0]))
    gallery.close()
    for target in ("fresh", "kept"):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_IMPORT, kind, place, target],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "inside", process.stderr.read() if process.stderr else ""
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    reopened = open_store()
    try:
        assert [c.name for c in reopened.collections()] == ["kept"] and reopened.health().quarantined == ()
        assert reopened.collection("kept").faces == 1 and len(list(reopened.faces("kept"))) == 1
    finally:
        reopened.close()
        if url:
            clear_postgres(url)


# --- unknown names


UNKNOWN_COLLECTION_CALLS: list[Callable[[FaceGallery], object]] = [
    lambda g: g.collection("nope"),
    lambda g: g.delete_collection("nope"),
    lambda g: g.add_face("nope", face("ann", np.ones(DIM, np.float32) / np.sqrt(DIM))),
    lambda g: g.subjects("nope", None, 10),
    lambda g: g.subject("nope", "ann"),
    lambda g: g.delete_subject("nope", "ann"),
    lambda g: g.delete_face("nope", uuid.uuid4().hex),
    lambda g: g.search("nope", np.ones((1, DIM), np.float32), 1),
    lambda g: g.faces("nope"),
]


def test_unknown_names_raise_their_errors(gallery: FaceGallery) -> None:
    for call in UNKNOWN_COLLECTION_CALLS:
        with pytest.raises(CollectionNotFound) as raised:
            call(gallery)
        assert raised.value.code == "collection_not_found"
    gallery.create_collection("c", MODEL, DIM, 0.3)
    for call in (
        lambda: gallery.subject("c", "ann"),
        lambda: gallery.delete_subject("c", "ann"),
        lambda: gallery.search("c", np.ones((1, DIM), np.float32), 1, external_id="ann"),
    ):
        with pytest.raises(SubjectNotFound):
            call()
    with pytest.raises(FaceNotFound) as missing:
        gallery.delete_face("c", uuid.uuid4().hex)
    assert missing.value.code == "face_not_found"


# --- concurrency, persistence, health


def test_concurrent_enrolments_of_one_subject_neither_lose_nor_duplicate(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(17), 150)
    results: list[tuple[FaceRecord, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def enrol_some(thread: int) -> None:
        start.wait()
        for j in range(25):
            source = (thread * 25 + j) % 150  # 200 calls, 150 sources: 50 repeated, often at the same time
            try:
                results.append(gallery.add_face("c", face("ann", vectors[source], digest=f"source-{source}")))
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=enrol_some, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 200
    assert sum(not duplicate for _, duplicate in results) == 150
    info, faces = gallery.subject("c", "ann")
    assert info.faces == len(faces) == 150 == gallery.collection("c").faces
    assert sorted(f.source_digest for f in faces) == sorted(f"source-{s}" for s in range(150))
    by_digest = {f.source_digest: f.face_id for f in faces}
    assert all(record.face_id == by_digest[record.source_digest] for record, _ in results)  # duplicates: the stored
    assert len(gallery.search("c", vectors[:1], top_k=3).hits[0]) == 1


def test_searches_never_see_a_half_written_matrix(gallery: FaceGallery) -> None:
    """Writers add and delete while readers search: every hit's similarity is its face's true one."""
    rng = np.random.default_rng(18)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(rng, 400)
    by_id: dict[str, np.ndarray] = {}
    for i in range(200):
        record, _ = gallery.add_face("c", face(f"s{i % 40}", vectors[i]))
        by_id[record.face_id] = vectors[i]
    probes = unit(rng, 4)
    stop = threading.Event()
    wrong: list[str] = []

    def search() -> None:
        while not stop.is_set():
            for row, probe in zip(gallery.search("c", probes, top_k=10).hits, probes, strict=True):
                for hit in row:
                    known = by_id.get(hit.face_id)
                    if known is None or abs(float(known @ probe) - hit.similarity) > 1e-4:
                        wrong.append(hit.face_id)

    readers = [threading.Thread(target=search) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for i in range(200, 260):
            added = face(f"s{i % 40}", vectors[i])
            by_id[added.face_id] = vectors[i]  # before the store has it: a reader may see it at once
            gallery.add_face("c", added)
            if i % 3 == 0:
                gallery.delete_face("c", next(iter(f.face_id for f in gallery.faces("c"))))
            if i % 20 == 0:
                gallery.delete_subject("c", f"s{i % 40}")
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert wrong == []


def test_health_is_ok(gallery: FaceGallery) -> None:
    health = gallery.health()
    assert health.ok and health.store == gallery.kind and health.detail
    assert gallery.kind in {"memory", "sqlite", "postgresql"}


@pytest.mark.parametrize("make_gallery", ["sqlite", "postgresql"], indirect=True)  # memory keeps nothing
def test_a_reopened_store_has_the_same_faces(make_gallery: Maker) -> None:
    first = make_gallery()
    rng = np.random.default_rng(19)
    first.create_collection("c", MODEL, DIM, 0.3)
    first.create_collection("d", MODEL, 128, 0.5)
    vectors = unit(rng, 30)
    for i in range(30):
        first.add_face("c", face(f"s{i % 7}", vectors[i]))
    first.add_face("d", face("x", unit(rng, 1, 128)[0]))
    first.delete_subject("c", "s1")
    probes = unit(rng, 3)
    before = first.search("c", probes, top_k=4)
    faces_before = list(first.faces("c"))
    infos_before = first.collections()
    first.close()

    second = make_gallery()
    assert second.collections() == infos_before
    faces_after = list(second.faces("c"))
    assert len(faces_after) == len(faces_before) == 30 - 5
    assert all(same_face(a, b) for a, b in zip(faces_after, faces_before, strict=True))
    after = second.search("c", probes, top_k=4)
    assert [[(h.external_id, h.face_id) for h in row] for row in after.hits] == [
        [(h.external_id, h.face_id) for h in row] for row in before.hits
    ]
    info, stored = second.subject("c", "s2")
    assert info.faces == len(stored) == 4
    assert [f.face_id for f in stored] == [f.face_id for f in faces_before if f.external_id == "s2"]
    assert second.add_face("c", stored[0])[1] is True  # its sources are still known


# Back to schema version 1, as a database of an older release is: faces of subjects only, without
# landmarks or quality, no photos.
TO_VERSION_1 = {
    "sqlite": [
        "DROP TABLE cluster_jobs",
        "DROP TABLE person_refusals",
        "DROP TABLE person_faces",
        "DROP TABLE people",
        SQLITE_MIGRATIONS[0][2].replace("CREATE TABLE faces", "CREATE TABLE faces_1"),
        "INSERT INTO faces_1 SELECT seq, face_id, collection_id, subject_id, source_digest, x1, y1, x2, y2,"
        " confidence, created_at, embedding FROM faces",
        "DROP TABLE faces",
        "DROP TABLE photos",
        "ALTER TABLE faces_1 RENAME TO faces",
        SQLITE_MIGRATIONS[0][3],
        "ALTER TABLE collections DROP COLUMN people_revision",
        "PRAGMA user_version = 1",
    ],
    "postgresql": [
        "DROP TABLE gallery_cluster_jobs",
        "DROP TABLE gallery_person_refusals, gallery_person_faces, gallery_people",
        "DROP TRIGGER gallery_faces_leave_people ON gallery_faces",
        "DROP FUNCTION gallery_faces_leave_people, gallery_people_emptied",
        "DROP TABLE gallery_photos CASCADE",
        "ALTER TABLE gallery_faces DROP CONSTRAINT gallery_faces_owner, DROP COLUMN photo_id,"
        " DROP COLUMN landmarks, DROP COLUMN quality, ALTER COLUMN external_id SET NOT NULL",
        "ALTER TABLE gallery_collections DROP COLUMN photos, DROP COLUMN people_revision",
        "DELETE FROM gallery_schema WHERE version > 1",
    ],
}


def open_sql_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Callable[[], Any]]:
    """A place for one SQL store (an emptied PostgreSQL database, or a new SQLite file) and its opener."""
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    if url:
        clear_postgres(url)
    place = url or str(tmp_path / "faces.sqlite3")

    def open_store() -> Any:
        return PostgresGallery(url, LIMITS) if url else SqliteGallery(Path(place), LIMITS)

    return place, open_store


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_older_database_is_migrated_and_its_faces_have_no_landmarks_or_quality(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    place, open_store = open_sql_store(kind, request, tmp_path)
    rng = np.random.default_rng(43)
    gallery = open_store()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    old = face("ann", unit(rng, 1)[0])
    gallery.add_face("c", old)
    gallery.close()
    corrupt(kind, place, TO_VERSION_1[kind])

    gallery = open_store()  # migrates: the columns come back, NULL for the faces already there
    try:
        (read,) = gallery.subject("c", "ann")[1]
        assert same_face(read, replace(old, landmarks=None, quality=None))
        new = face("ann", unit(rng, 1)[0])
        gallery.add_face("c", new)
        assert [same_face(a, b) for a, b in zip(gallery.faces("c"), [read, new], strict=True)] == [True, True]
    finally:
        gallery.close()
        if kind == "postgresql":
            clear_postgres(place)


FACE_CORRUPTIONS = {
    "sqlite": "UPDATE faces SET {column} = {value}",
    "postgresql": "UPDATE gallery_faces SET {column} = {value}",
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("landmarks", "'[[1, 2], [3, 4]]'"),
        ("landmarks", "'not json'"),
        ("quality", '\'{"level": 5, "score": 0.5, "reasons": []}\''),
        ("quality", '\'{"level": "high", "score": 7, "reasons": []}\''),
        ("quality", "'[1'"),
    ],
)
def test_a_face_whose_landmarks_or_quality_were_edited_behind_its_back_is_never_served(
    kind: str, column: str, value: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SQLite finds it when it loads (the collection is quarantined; the others served); PostgreSQL,
    which caches nothing, when the face is read: CollectionUnavailable, never a wrong value."""
    place, open_store = open_sql_store(kind, request, tmp_path)
    rng = np.random.default_rng(44)
    gallery = open_store()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    gallery.add_face("c", face("ann", unit(rng, 1)[0]))
    gallery.close()
    corrupt(kind, place, [FACE_CORRUPTIONS[kind].format(column=column, value=value)])

    gallery = open_store()
    try:
        reads: list[Callable[[], object]] = [lambda: gallery.subject("c", "ann"), lambda: list(gallery.faces("c"))]
        for read in reads:
            with pytest.raises(CollectionUnavailable):
                read()
        if kind == "sqlite":
            assert [q.name for q in gallery.health().quarantined] == ["c"]
    finally:
        gallery.close()
        if kind == "postgresql":
            clear_postgres(place)


# --- SQLite


def sqlite_gallery(path: Path, limits: GalleryLimits = LIMITS) -> SqliteGallery:
    return SqliteGallery(path, limits)


def test_sqlite_deleted_vectors_leave_no_bytes_in_the_files_or_memory(tmp_path: Path) -> None:
    path = tmp_path / "faces.sqlite3"
    gallery = sqlite_gallery(path)
    rng = np.random.default_rng(20)
    gallery.create_collection("c", MODEL, 512, 0.3)
    gallery.create_collection("gone", MODEL, 512, 0.3)
    vectors = unit(rng, 240, 512)
    records = [gallery.add_face("c", face(f"s{i % 12}", vectors[i]))[0] for i in range(200)]
    doomed = [gallery.add_face("gone", face(f"g{i}", vectors[i]))[0] for i in range(200, 240)]

    deleted = [r for r in records if r.external_id == "s3"]
    assert gallery.delete_subject("c", "s3") == len(deleted)
    single = next(r for r in records if r.external_id == "s5")
    gallery.delete_face("c", single.face_id)
    deleted += [single]
    gallery.delete_collection("gone")
    deleted += doomed
    kept = [r for r in records if r not in deleted]

    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("faces.sqlite3"))
    memory = b"".join(c.matrix._vectors.tobytes() for c in gallery._collections.values())
    compact = b"".join(c.matrix._codes.tobytes() for c in gallery._collections.values())  # the int8 copy
    names = b"|".join(c.matrix._table._text.tobytes() for c in gallery._collections.values())  # subject table

    def codes(record: FaceRecord) -> bytes:
        return quantize(np.asarray(record.embedding, dtype=np.float32)[None]).codes.tobytes()

    for record in deleted:
        blob = np.asarray(record.embedding, dtype=np.float32).tobytes()
        assert blob not in files, record.face_id
        assert blob[:256] not in files and blob[-256:] not in files
        assert blob not in memory
        assert codes(record) not in compact
    assert all(np.asarray(r.embedding, np.float32).tobytes() in files for r in kept)  # the scan does find vectors
    assert all(np.asarray(r.embedding, np.float32).tobytes() in memory for r in kept)
    assert all(codes(r) in compact for r in kept)
    assert b"s3" not in names and b"s4" in names  # a deleted subject's name is zeroed in the table
    gallery.close()


CHILD = """
import sys, uuid
from datetime import UTC, datetime
from pathlib import Path
import numpy as np
from adapters.stores.sqlite import SqliteGallery
from domain.gallery import FaceRecord, GalleryLimits

gallery = SqliteGallery(Path(sys.argv[1]), GalleryLimits(1, 10_000, 10_000, 1_000_000))
i = 0
while True:
    vector = np.random.default_rng(i).standard_normal(512).astype(np.float32)
    vector /= np.linalg.norm(vector)
    record = FaceRecord(uuid.uuid4().hex, f"s{i % 7}", vector, None, None, f"source-{i}", datetime.now(UTC))
    gallery.add_face("crash", record)
    print(record.face_id, i, flush=True)
    i += 1
"""


def expected_vector(i: int) -> np.ndarray:
    vector = np.random.default_rng(i).standard_normal(512).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_sqlite_keeps_every_acknowledged_face_through_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "faces.sqlite3"
    gallery = sqlite_gallery(path)
    gallery.create_collection("crash", MODEL, 512, 0.3)
    gallery.close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    acknowledged: dict[str, int] = {}
    for line in child.stdout:
        face_id, index = line.split()
        acknowledged[face_id] = int(index)
        if len(acknowledged) == 150:
            break
    os.kill(child.pid, signal.SIGKILL)  # mid-loop: possibly inside a transaction
    for line in child.stdout:  # what it printed before it died was acknowledged too
        face_id, index = line.split()
        acknowledged[face_id] = int(index)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    reopened = sqlite_gallery(path)
    stored = {record.face_id: record for record in reopened.faces("crash")}
    assert set(acknowledged) <= set(stored)
    assert len(stored) - len(acknowledged) in (0, 1)  # at most the one whose return it did not print
    for record in stored.values():  # every face whole: its vector is the one its source index gave
        index = int(record.source_digest.removeprefix("source-"))
        assert np.array_equal(record.embedding, expected_vector(index))
        assert acknowledged.get(record.face_id, index) == index
    probe = expected_vector(10)[np.newaxis]
    assert reopened.search("crash", probe, top_k=1).hits[0][0].similarity == pytest.approx(1.0, abs=1e-5)
    reopened.close()


def test_sqlite_creates_its_directory_and_says_when_it_cannot(tmp_path: Path) -> None:
    gallery = sqlite_gallery(tmp_path / "new" / "deeper" / "faces.sqlite3")
    assert (tmp_path / "new" / "deeper" / "faces.sqlite3").is_file()
    gallery.close()
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="not writable"):
        sqlite_gallery(tmp_path / "a-file" / "faces.sqlite3")


def test_sqlite_one_process_per_file(tmp_path: Path) -> None:
    gallery = sqlite_gallery(tmp_path / "faces.sqlite3")
    with pytest.raises(StoreUnavailable, match="open in another process"):
        sqlite_gallery(tmp_path / "faces.sqlite3")
    gallery.close()
    sqlite_gallery(tmp_path / "faces.sqlite3").close()  # free again once closed
    with pytest.raises(StoreUnavailable, match="closed"):
        gallery.collections()


def test_sqlite_is_durable_and_zeroes_what_it_frees(tmp_path: Path) -> None:
    gallery = sqlite_gallery(tmp_path / "faces.sqlite3")
    db = gallery._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA_VERSION
    assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
    gallery.close()


# --- PostgreSQL


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Maker]:
    clear_postgres(postgres_url)
    opened: list[PostgresGallery] = []

    def make(limits: GalleryLimits = LIMITS, **options: Any) -> PostgresGallery:
        gallery = PostgresGallery(postgres_url, limits, **options)
        opened.append(gallery)
        return gallery

    yield make
    for gallery in opened:
        gallery.close()
    clear_postgres(postgres_url)


def rows_with(url: str, face_ids: list[str]) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM gallery_faces WHERE face_id = ANY(%s)", (face_ids,)).fetchone()
    assert row is not None
    return int(row[0])


def test_postgres_deleted_faces_have_no_row(pg: Maker, postgres_url: str) -> None:
    gallery = pg()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    gallery.create_collection("gone", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(21), 30)
    records = [gallery.add_face("c", face(f"s{i % 5}", vectors[i]))[0] for i in range(20)]
    doomed = [gallery.add_face("gone", face("x", vectors[i]))[0].face_id for i in range(20, 30)]
    subject = [r.face_id for r in records if r.external_id == "s2"]
    single = records[0].face_id
    assert rows_with(postgres_url, [*subject, single, *doomed]) == len(subject) + 1 + len(doomed)

    gallery.delete_subject("c", "s2")
    gallery.delete_face("c", single)
    gallery.delete_collection("gone")
    assert rows_with(postgres_url, [*subject, single, *doomed]) == 0
    assert rows_with(postgres_url, [r.face_id for r in records]) == 20 - len(subject) - 1
    with psycopg.connect(postgres_url) as conn:
        tables = {
            row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'gallery_faces_%'")
        }
    assert len(tables) == 1  # the deleted collection's partition was dropped


def test_postgres_a_face_row_edited_behind_its_back_is_collection_unavailable(pg: Maker, postgres_url: str) -> None:
    gallery = pg()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(42), 2)
    gallery.add_face("c", face("ann", vectors[0]))
    gallery.drop_index("c")  # its expression, embedding::vector(64), would refuse the edit
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE gallery_faces SET embedding = '[1,2,3]'")
    with pytest.raises(CollectionUnavailable):
        gallery.search("c", vectors[1:], top_k=1)


def test_postgres_small_collection_in_a_large_table_gets_its_true_top_k(pg: Maker, postgres_url: str) -> None:
    """HNSW forced on every collection (exact_below=0): a 20-face collection next to a 20,000-face one."""
    gallery = pg(exact_below=0)
    rng = np.random.default_rng(22)
    gallery.create_collection("big", MODEL, DIM, 0.3)
    gallery.create_collection("small", MODEL, DIM, 0.3)
    gallery.drop_index("big")  # loaded without its graph, to keep the test short; not searched here
    big = unit(rng, 20_000)
    for start in range(0, 20_000, 5_000):
        gallery.add_faces("big", [face(f"b{i // 4}", big[i]) for i in range(start, start + 5_000)])
    small = unit(rng, 20)
    owners = [f"m{i % 8}" for i in range(20)]
    ids = enrol(gallery, "small", small, owners)
    gallery.drop_index("small")  # and back: what an import does
    gallery.build_index("small", maintenance_work_mem="64MB")
    probes = np.vstack([big[:4], small[:2]])  # also probes right on the big collection's faces

    outcome = gallery.search("small", probes, top_k=5)
    assert outcome.method == "approximate" and outcome.searched == 20
    for row, wanted in zip(outcome.hits, truth(probes, small, owners, ids, 5), strict=True):
        assert [(h.external_id, h.face_id) for h in row] == [(name, face_id) for name, face_id, _ in wanted]
        assert np.allclose([h.similarity for h in row], [score for _, _, score in wanted], atol=1e-5)
    with psycopg.connect(postgres_url) as conn:  # it was the small collection's own HNSW index
        conn.execute("SET enable_seqscan = off")  # as the gallery's approximate searches do
        table = conn.execute("SELECT 'gallery_faces_' || id FROM gallery_collections WHERE name = 'small'").fetchone()
        assert table is not None
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                psycopg.sql.SQL(
                    "EXPLAIN SELECT face_id FROM {} ORDER BY (embedding::vector({})) <=> %s::vector LIMIT 10"
                ).format(psycopg.sql.Identifier(table[0]), psycopg.sql.Literal(DIM)),
                (str(small[0].tolist()),),
            )
        )
    assert "hnsw" in plan and "Index Scan" in plan
    assert gallery.collection("big").faces == 20_000
    assert gallery.search("big", big[:1], top_k=1).hits[0][0].similarity == pytest.approx(1.0)  # no index: a scan


def test_postgres_replicas_see_each_others_writes(pg: Maker) -> None:
    one, two = pg(), pg()
    vectors = unit(np.random.default_rng(23), 3)
    one.create_collection("c", MODEL, DIM, 0.3)
    assert two.collection("c").faces == 0
    stored, _ = one.add_face("c", face("ann", vectors[0], digest="d"))
    assert two.collection("c").faces == 1
    assert two.search("c", vectors[:1], top_k=1).hits[0][0].face_id == stored.face_id
    assert two.add_face("c", face("ann", vectors[1], digest="d"))[1] is True  # one's face, seen by two
    two.delete_subject("c", "ann")
    with pytest.raises(SubjectNotFound):
        one.subject("c", "ann")
    assert one.search("c", vectors[:1], top_k=1).hits == [[]]


def test_postgres_limits_hold_across_replicas(pg: Maker) -> None:
    limits = GalleryLimits(5, 3, 10, 100)
    replicas = [pg(limits), pg(limits)]
    replicas[0].create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(24), 80)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def enrol_some(thread: int) -> None:
        gallery = replicas[thread % 2]
        start.wait()
        for j in range(10):
            i = thread * 10 + j
            try:
                gallery.add_face("c", face(f"s{i % 5}", vectors[i]))
                outcomes.append("stored")
            except GalleryLimitExceeded as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=enrol_some, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    info = replicas[1].collection("c")
    subjects = replicas[0].subjects("c", None, 10)
    assert info.subjects == len(subjects) == 3  # never more subjects than allowed
    assert all(s.faces <= 10 for s in subjects)
    assert info.faces == sum(s.faces for s in subjects) == outcomes.count("stored") == 30
    assert set(outcomes) == {"stored", "subject_limit", "subject_face_limit"}


def test_postgres_migrates_once_when_replicas_start_together(postgres: Any) -> None:
    url = create_database(postgres, f"fresh_{uuid.uuid4().hex[:8]}")
    opened: list[PostgresGallery] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresGallery(url, LIMITS, pool_size=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 4
    opened[0].migrate()  # idempotent
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT array_agg(version ORDER BY version) FROM gallery_schema").fetchone()
    assert versions == (list(range(1, POSTGRES_SCHEMA_VERSION + 1)),)  # each step once
    for gallery in opened:
        gallery.close()


def test_postgres_unreachable_is_store_unavailable(postgres_url: str) -> None:
    health_before = None
    with postgres_server() as server:
        url = create_database(server, "doomed")
        gallery = PostgresGallery(url, LIMITS, timeout=0.3)
        gallery.create_collection("c", MODEL, DIM, 0.3)
        health_before = gallery.health()
        server.stop()
        calls: list[Callable[[], object]] = [
            lambda: gallery.collection("c"),
            lambda: gallery.collections(),
            lambda: gallery.add_face("c", face("ann", np.ones(DIM, np.float32) / np.sqrt(DIM))),
            lambda: gallery.search("c", np.ones((1, DIM), np.float32), 1),
            lambda: list(gallery.faces("c")),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as raised:
                call()
            assert raised.value.code == "store_unavailable"
        health = gallery.health()
        gallery.close()
    assert health_before.ok and health_before.store == "postgresql"
    assert not health.ok and health.store == "postgresql" and health.detail
    with pytest.raises(StoreUnavailable):
        PostgresGallery(url, LIMITS, timeout=0.3)  # nothing listens there any more


def test_postgres_vectors_stay_in_their_rows(pg: Maker, postgres_url: str) -> None:
    """Whole rows in their pages (STORAGE MAIN, toast_tuple_target): nothing in the TOAST table, where
    a scan would look each value up."""
    gallery = pg()
    gallery.create_collection("c", MODEL, 512, 0.3)
    vectors = unit(np.random.default_rng(25), 50, 512)
    gallery.add_faces("c", [face(f"s{i}", vectors[i]) for i in range(50)])
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT c.relname, a.attstorage, coalesce(pg_relation_size(c.reltoastrelid), 0)"
            " FROM gallery_collections g JOIN pg_class c ON c.relname = 'gallery_faces_' || g.id"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' WHERE g.name = 'c'"
        ).fetchone()
    assert row is not None and row[1] == "m" and row[2] == 0, row
