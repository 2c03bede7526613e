"""The SQLite gallery's start (adapters/stores/sqlite_load.py): a collection read back in chunks of
aggregates must serve exactly what it served before the restart, whatever mix of labelled, photo and
deleted faces its chunks hold, next to another collection whose rows interleave with its own; and a
row no write could have stored, in any chunk, quarantines its collection and only it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from adapters.stores import sqlite_load
from adapters.stores.sqlite import SqliteGallery
from domain.gallery import GalleryLimits
from tests.integration.test_exact_search import assert_exact, reference, unit_rows
from tests.integration.test_gallery_contract import MODEL, face
from tests.integration.test_photo_gallery_contract import index, photo_faces

DIMENSION = 16
LIMITS = GalleryLimits(5, 10_000, 50, 100_000)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_load, "LOAD_ROWS", 7)  # a few faces per chunk: many chunks, partial ones


def fill(gallery: SqliteGallery, rng: np.random.Generator) -> None:
    """Two collections written in turn (their rows interleave), each with labelled faces, photos of
    unlabelled faces, a photo face labelled later, a photo with no face, and deleted faces and subjects."""
    for name in ("a", "b"):
        gallery.create_collection(name, MODEL, DIMENSION, 0.3)
    for round_ in range(6):
        for name in ("a", "b"):
            vectors = unit_rows(rng.standard_normal((9, DIMENSION)))
            gallery.add_faces(name, [face(f"s{round_}-{i % 4}", v) for i, v in enumerate(vectors)])
            index(gallery, name, f"p{round_}", unit_rows(rng.standard_normal((3, DIMENSION))))
    for name in ("a", "b"):
        gallery.add_photo(name, *photo_faces("empty", np.zeros((0, DIMENSION), dtype=np.float32)))
        photo_face = gallery.photo(name, "p2")[1][0]
        gallery.label_faces(name, [photo_face.face_id], "s0-0")
        gallery.delete_subject(name, "s1-1")
        gallery.delete_face(name, gallery.subject(name, "s3-2")[1][0].face_id)
        gallery.delete_photo(name, "p4")


def served(gallery: SqliteGallery, probes: np.ndarray) -> dict[str, object]:
    """Everything a search or a count answers, per collection."""
    answers: dict[str, object] = {}
    for name in ("a", "b"):
        faces = list(gallery.faces(name))
        labelled = [f for f in faces if f.external_id is not None]
        expected = reference(
            probes,
            np.stack([f.embedding for f in labelled]),
            [f.external_id for f in labelled],
            [f.face_id for f in labelled],
            5,
        )
        found = gallery.search(name, probes, top_k=5).hits
        assert_exact(found, expected)
        photo_hits = [gallery.search_photos(name, probe, -1.0, 100, None) for probe in probes]
        info = gallery.collection(name)
        answers[name] = (found, [(o.hits, o.count) for o in photo_hits], info.faces, info.subjects, info.photos)
    return answers


def test_a_restart_serves_exactly_what_was_served_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "faces.sqlite3"
    gallery = SqliteGallery(path, LIMITS)
    fill(gallery, rng)
    probes = unit_rows(rng.standard_normal((6, DIMENSION)))
    before = served(gallery, probes)
    gallery.close()

    reopened = SqliteGallery(path, LIMITS)
    try:
        assert reopened.health().quarantined == ()
        assert served(reopened, probes) == before
        matrix = reopened._collections["a"].matrix
        assert matrix.faces_of("s0-0") == 4 and not matrix.has_subject("s1-1")
        # the faceless photo is counted but has no group in the photo matrix
        assert reopened.collection("a").photos == 6 and reopened._collections["a"].by_photo.subjects == 5
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("corruption", "reason"),
    [
        ("UPDATE faces SET embedding = substr(embedding, 1, 60) WHERE seq = {seq}", "wrong size"),
        ("UPDATE faces SET embedding = CAST(embedding AS TEXT) WHERE seq = {seq}", "wrong size"),
        (
            "UPDATE faces SET embedding = CAST(substr(embedding, 1, 8) || X'0000C07F' || substr(embedding, 13) AS BLOB)"
            " WHERE seq = {seq}",
            "non-finite",
        ),
        ("UPDATE faces SET face_id = substr(face_id, 2) WHERE seq = {seq}", "face id"),
        ("UPDATE faces SET face_id = substr(face_id, 2) || 'g' WHERE seq = {seq}", "id no write"),
        ("UPDATE faces SET subject_id = 999999 WHERE seq = {seq}", "does not exist"),
        ("UPDATE faces SET quality = '[1' WHERE seq = {seq}", "landmarks or quality"),
    ],
)
def test_a_row_no_write_could_store_quarantines_its_collection_in_any_chunk(
    tmp_path: Path, corruption: str, reason: str
) -> None:
    rng = np.random.default_rng(6)
    path = tmp_path / "faces.sqlite3"
    gallery = SqliteGallery(path, LIMITS)
    fill(gallery, rng)
    probes = unit_rows(rng.standard_normal((3, DIMENSION)))
    kept = served(gallery, probes)["b"]
    gallery.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        seqs = [
            row[0]
            for row in db.execute(
                "SELECT f.seq FROM faces f JOIN collections c ON c.id = f.collection_id"
                " WHERE c.name = 'a' AND f.subject_id IS NOT NULL ORDER BY f.seq"
            )
        ]
        db.execute(corruption.format(seq=seqs[len(seqs) // 2]))  # a chunk in the middle

    reopened = SqliteGallery(path, LIMITS)
    try:
        [quarantined] = reopened.health().quarantined
        assert quarantined.name == "a" and reason in quarantined.reason
        assert served_one(reopened, probes, "b") == kept
    finally:
        reopened.close()


def served_one(gallery: SqliteGallery, probes: np.ndarray, name: str) -> object:
    found = gallery.search(name, probes, top_k=5).hits
    photo_hits = [gallery.search_photos(name, probe, -1.0, 100, None) for probe in probes]
    info = gallery.collection(name)
    return (found, [(o.hits, o.count) for o in photo_hits], info.faces, info.subjects, info.photos)
