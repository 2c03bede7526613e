"""Photos in the FaceGallery port, on every store (memory, SQLite, PostgreSQL): a photo's faces are
stored unlabelled under its id, idempotently by id and bytes; photo search answers each photo once
with its best face, exactly (against brute force), with a count and cursor pages; subject search and
photo search never see each other's faces; deleting a photo (or a person, with the PeopleStore port)
removes its faces from search, export, memory and the files."""
# ruff: noqa: F811 (the contract suite's fixtures, imported, are this module's test arguments)

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from adapters.stores.matrix import quantize
from domain.errors import (
    FaceServiceError,
    GalleryLimitExceeded,
    PhotoExists,
    PhotoNotFound,
    SubjectNotFound,
)
from domain.gallery import FaceRecord, GalleryLimits, PhotoCursor, PhotoHit, PhotoInfo
from domain.ports import FaceGallery
from tests.integration.test_gallery_contract import (  # noqa: F401 (fixtures)
    DIM,
    LANDMARKS,
    LIMITS,
    MODEL,
    QUALITY,
    Maker,
    face,
    gallery,
    make_gallery,
    pg,
    same_face,
    unit,
)

T = datetime(2026, 3, 1, tzinfo=UTC)


def photo_faces(photo_id: str, vectors: np.ndarray, digest: str | None = None) -> tuple[PhotoInfo, list[FaceRecord]]:
    """A photo and its unlabelled faces, one per row of `vectors`."""
    digest = digest or uuid.uuid4().hex + uuid.uuid4().hex
    faces = [
        FaceRecord(
            uuid.uuid4().hex,
            None,
            vector.astype(np.float32),
            (10.0 * i, 20.0, 10.0 * i + 50.5, 90.25),
            0.9,
            digest,
            T,
            landmarks=LANDMARKS,
            quality=QUALITY,
            photo_id=photo_id,
        )
        for i, vector in enumerate(vectors)
    ]
    return PhotoInfo(photo_id, digest, len(faces), T), faces


def index(gallery: FaceGallery, name: str, photo_id: str, vectors: np.ndarray) -> list[FaceRecord]:
    photo, faces = photo_faces(photo_id, vectors)
    info, stored, duplicate = gallery.add_photo(name, photo, faces)
    assert not duplicate and info.faces == len(faces)
    return stored


def truth(probe: np.ndarray, faces: dict[str, list[FaceRecord]], floor: float) -> list[tuple[str, str, float]]:
    """Per photo its best face (score, then face id) at or above `floor`, ranked by score then photo id."""
    best = []
    for photo_id, records in faces.items():
        scored = [(float(np.dot(probe.astype(np.float64), f.embedding.astype(np.float64))), f.face_id) for f in records]
        if scored:
            score, face_id = min(scored, key=lambda item: (-item[0], item[1]))
            if score >= floor:
                best.append((photo_id, face_id, score))
    return sorted(best, key=lambda item: (-item[2], item[0]))


def all_pages(
    gallery: FaceGallery, name: str, probe: np.ndarray, floor: float, top_k: int
) -> tuple[list[PhotoHit], int]:
    hits: list[PhotoHit] = []
    after = None
    counts = set()
    while True:
        outcome = gallery.search_photos(name, probe, floor, top_k, after)
        counts.add(outcome.count)
        assert len(outcome.hits) <= top_k
        hits += outcome.hits
        if len(outcome.hits) < top_k:
            break
        last = outcome.hits[-1]
        after = PhotoCursor(last.similarity, last.photo_id)
    assert len(counts) == 1  # the same count on every page
    return hits, counts.pop()


def test_a_photo_is_stored_with_its_unlabelled_faces_and_indexed_once(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(50)
    photo, faces = photo_faces("img_001.jpg", unit(rng, 3))
    info, stored, duplicate = gallery.add_photo("c", photo, faces)
    assert not duplicate and (info.photo_id, info.faces, info.source_digest) == ("img_001.jpg", 3, photo.source_digest)
    assert all(same_face(a, b) for a, b in zip(stored, faces, strict=True))
    again, stored_again, duplicate = gallery.add_photo(
        "c", photo, photo_faces("img_001.jpg", unit(rng, 2), photo.source_digest)[1]
    )
    assert duplicate and again.faces == 3 and [f.face_id for f in stored_again] == [f.face_id for f in faces]
    with pytest.raises(PhotoExists) as raised:
        gallery.add_photo("c", *photo_faces("img_001.jpg", unit(rng, 1)))  # the same id, other bytes
    assert raised.value.code == "photo_exists"
    empty, nothing, duplicate = gallery.add_photo("c", *photo_faces("empty.png", unit(rng, 0)))
    assert (empty.faces, nothing, duplicate) == (0, [], False)  # stored, so that a resumed indexing skips it

    read, read_faces = gallery.photo("c", "img_001.jpg")
    assert (read.faces, read.source_digest) == (3, photo.source_digest)
    assert all(same_face(a, b) for a, b in zip(read_faces, faces, strict=True))
    assert [p.photo_id for p in gallery.photos("c", None, 10)] == ["empty.png", "img_001.jpg"]
    assert [p.photo_id for p in gallery.photos("c", "empty.png", 10)] == ["img_001.jpg"]
    assert [p.faces for p in gallery.photos("c", None, 1)] == [0]
    info_c = gallery.collection("c")
    assert (info_c.subjects, info_c.faces, info_c.photos) == (0, 3, 2)
    assert gallery.subjects("c", None, 10) == []  # unlabelled faces are nobody's
    assert sorted(f.face_id for f in gallery.faces("c")) == sorted(f.face_id for f in faces)  # export sees them
    with pytest.raises(PhotoNotFound) as missing:
        gallery.photo("c", "nope.jpg")
    assert missing.value.code == "photo_not_found"


def test_subject_search_and_photo_search_never_see_each_others_faces(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(51), 2)
    gallery.add_face("c", face("ann", vectors[0]))
    index(gallery, "c", "p1", vectors[1:2])
    subjects = gallery.search("c", vectors, top_k=5).hits
    assert [[h.external_id for h in row] for row in subjects] == [["ann"], ["ann"]]  # never the photo's face
    assert subjects[1][0].similarity < 0.99
    found = gallery.search_photos("c", vectors[0], -1.0, 10, None)
    assert [h.photo_id for h in found.hits] == ["p1"] and found.count == 1 and found.hits[0].similarity < 0.99
    assert found.hits[0].external_id is None and found.hits[0].bbox == (0.0, 20.0, 50.5, 90.25)
    assert gallery.collection("c").faces == 2


@pytest.mark.parametrize("floor", [-1.0, 0.0, 0.2])
def test_photo_search_is_exact_each_photo_once_ranked_counted_and_paged(gallery: FaceGallery, floor: float) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(52)
    people = unit(rng, 8)
    stored: dict[str, list[FaceRecord]] = {}
    for p in range(60):  # photos of 0 to 4 faces, some of them near one of 8 people
        count = int(rng.integers(0, 5))
        noisy = people[rng.integers(0, 8, count)] + 0.6 * unit(rng, count)
        vectors = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        stored[f"photo-{p:03d}"] = index(gallery, "c", f"photo-{p:03d}", vectors)
    gallery.add_face("c", face("decoy", people[0]))  # a subject's face: never a photo hit
    for probe in people[:3]:
        expected = truth(probe, stored, floor)
        hits, count = all_pages(gallery, "c", probe, floor, top_k=7)
        assert count == len(expected)
        assert [(h.photo_id, h.face_id) for h in hits] == [(p, f) for p, f, _ in expected]
        assert [h.similarity for h in hits] == pytest.approx([s for _, _, s in expected], abs=1e-5)
        first = gallery.search_photos("c", probe, floor, 1000, None)
        assert [h.photo_id for h in first.hits] == [p for p, _, _ in expected] and first.method == "exact"


def test_deleting_a_photo_removes_its_faces_everywhere(make_gallery: Maker) -> None:
    gallery = make_gallery()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(53), 5)
    doomed = index(gallery, "c", "doomed.jpg", vectors[:3])
    kept = index(gallery, "c", "kept.jpg", vectors[3:])
    assert gallery.delete_photo("c", "doomed.jpg") == 3
    with pytest.raises(PhotoNotFound):
        gallery.delete_photo("c", "doomed.jpg")
    with pytest.raises(PhotoNotFound):
        gallery.photo("c", "doomed.jpg")
    found = gallery.search_photos("c", vectors[0], -1.0, 10, None)
    assert [h.photo_id for h in found.hits] == ["kept.jpg"] and found.count == 1
    assert [f.face_id for f in gallery.faces("c")] == [f.face_id for f in kept]
    info = gallery.collection("c")
    assert (info.faces, info.photos) == (2, 1)
    if gallery.kind == "memory":
        return  # it keeps nothing to read back
    gallery.close()
    reopened = make_gallery()
    assert [f.face_id for f in reopened.faces("c")] == [f.face_id for f in kept]
    assert [h.photo_id for h in reopened.search_photos("c", vectors[0], -1.0, 10, None).hits] == ["kept.jpg"]
    assert all(f.face_id not in {d.face_id for d in doomed} for f in reopened.faces("c"))


def test_a_photo_that_would_pass_the_collection_face_limit_is_refused_whole(make_gallery: Maker) -> None:
    limits = GalleryLimits(max_collections=5, max_subjects_per_collection=10, max_faces_per_subject=10,
                           max_faces_per_collection=4)  # fmt: skip
    gallery = make_gallery(limits)
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(54)
    gallery.add_face("c", face("ann", unit(rng, 1)[0]))
    index(gallery, "c", "two.jpg", unit(rng, 2))
    with pytest.raises(GalleryLimitExceeded) as raised:
        gallery.add_photo("c", *photo_faces("three.jpg", unit(rng, 2)))
    assert raised.value.code == "collection_face_limit"
    with pytest.raises(PhotoNotFound):
        gallery.photo("c", "three.jpg")  # nothing of it was kept
    index(gallery, "c", "one.jpg", unit(rng, 1))
    assert gallery.collection("c").faces == 4 and gallery.collection("c").photos == 2


def test_a_photo_face_no_store_could_serve_is_never_written(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(55)
    photo, faces = photo_faces("p.jpg", unit(rng, 2))
    bad = [
        [replace(faces[0], external_id="ann"), faces[1]],  # a photo's faces start unlabelled
        [replace(faces[0], photo_id="other.jpg"), faces[1]],
        [replace(faces[0], source_digest="0" * 64), faces[1]],
        [faces[0], replace(faces[1], embedding=np.full(DIM, np.nan, dtype=np.float32))],
    ]
    for given in bad:
        with pytest.raises(FaceServiceError):
            gallery.add_photo("c", photo, given)
    with pytest.raises(FaceServiceError) as raised:
        gallery.add_photo("c", replace(photo, photo_id="a\x00b"), [])
    assert raised.value.code == "invalid_photo_id"
    assert gallery.photos("c", None, 10) == [] and gallery.collection("c").faces == 0


def test_photo_faces_move_through_export_and_import(make_gallery: Maker) -> None:
    gallery = make_gallery()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(56)
    vectors = unit(rng, 6)
    gallery.add_face("c", face("ann", vectors[0]))
    index(gallery, "c", "a.jpg", vectors[1:4])
    index(gallery, "c", "b.jpg", vectors[4:6])
    exported = list(gallery.faces("c"))
    labelled_photo_face = replace(exported[1], face_id=uuid.uuid4().hex, external_id="bob")  # a face of a.jpg, named
    copies = [replace(f, face_id=uuid.uuid4().hex) for f in exported]
    outcome = gallery.import_collection("copy", MODEL, DIM, 0.3, [*copies, labelled_photo_face])
    assert (outcome.created, outcome.added, outcome.duplicates) == (True, 7, 0)
    info = gallery.collection("copy")
    assert (info.subjects, info.faces, info.photos) == (2, 7, 2)
    assert gallery.photo("copy", "a.jpg")[0].faces == 4
    hits = gallery.search_photos("copy", vectors[1], 0.99, 10, None).hits
    assert [h.photo_id for h in hits] == ["a.jpg"]
    again = gallery.import_collection("copy", MODEL, DIM, 0.3, [replace(f, face_id=uuid.uuid4().hex) for f in copies])
    assert (again.added, again.duplicates) == (0, 6)  # ann's face is kept once; the photos keep the faces they have
    # bob's face is labelled and from a.jpg: subject search finds it, deleting a.jpg takes it and bob away
    assert gallery.search("copy", vectors[1:2], top_k=1).hits[0][0].external_id == "bob"
    assert gallery.delete_photo("copy", "a.jpg") == 4
    with pytest.raises(SubjectNotFound):
        gallery.subject("copy", "bob")
    assert gallery.collection("copy").subjects == 1


def test_deleting_a_subject_takes_its_photo_faces_out_of_photo_search(gallery: FaceGallery) -> None:
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(57), 2)
    _, faces = photo_faces("a.jpg", vectors)
    named = replace(faces[0], external_id="ann")
    gallery.import_collection("c", MODEL, DIM, 0.3, [named, faces[1]])
    assert gallery.search_photos("c", vectors[0], 0.99, 10, None).count == 1
    assert gallery.delete_subject("c", "ann") == 1
    assert gallery.search_photos("c", vectors[0], 0.99, 10, None).count == 0
    assert gallery.photo("c", "a.jpg")[0].faces == 1
    gallery.delete_face("c", faces[1].face_id)
    assert gallery.photo("c", "a.jpg")[0].faces == 0 and gallery.collection("c").faces == 0


# --- what each store promises besides


def test_sqlite_a_deleted_photos_vectors_leave_no_bytes_in_the_files_or_memory(tmp_path: Path) -> None:
    from adapters.stores.sqlite import SqliteGallery

    gallery = SqliteGallery(tmp_path / "faces.sqlite3", LIMITS)
    gallery.create_collection("c", MODEL, 512, 0.3)
    vectors = unit(np.random.default_rng(58), 60, 512)
    photos = {f"p{i}.jpg": index(gallery, "c", f"p{i}.jpg", vectors[i * 3 : i * 3 + 3]) for i in range(20)}
    deleted = photos["p4.jpg"] + photos["p11.jpg"]
    gallery.delete_photo("c", "p4.jpg")
    gallery.delete_photo("c", "p11.jpg")
    kept = [f for name, faces in photos.items() if name not in ("p4.jpg", "p11.jpg") for f in faces]
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("faces.sqlite3"))
    matrix = gallery._collections["c"].by_photo
    memory, compact = matrix._vectors.tobytes(), matrix._codes.tobytes()
    for record in deleted:
        blob = record.embedding.tobytes()
        assert blob not in files and blob[:256] not in files and blob[-256:] not in files
        assert blob not in memory
        assert quantize(record.embedding[None]).codes.tobytes() not in compact
    assert b"p4.jpg" not in files and b"p11.jpg" not in files  # the photo's id is gone too
    assert all(record.embedding.tobytes() in files and record.embedding.tobytes() in memory for record in kept)
    gallery.close()


def test_sqlite_a_deleted_persons_vectors_leave_no_bytes_in_the_files_or_memory(tmp_path: Path) -> None:
    """A person's faces across photos, one of them labelled: gone from the file, both matrices and
    their int8 copies; their photos' other faces stay."""
    from adapters.stores.sqlite import SqliteGallery

    gallery = SqliteGallery(tmp_path / "faces.sqlite3", LIMITS)
    gallery.create_collection("c", MODEL, 512, 0.3)
    vectors = unit(np.random.default_rng(61), 30, 512)
    photos = [index(gallery, "c", f"p{i}.jpg", vectors[i * 3 : i * 3 + 3]) for i in range(10)]
    deleted = [photos[2][0], photos[5][1], photos[7][2]]
    person = gallery.move_faces("c", [f.face_id for f in deleted], None)
    gallery.label_faces("c", [deleted[1].face_id], "ann")
    assert gallery.delete_person("c", person.person_id) == 3
    kept = [f for faces in photos for f in faces if f not in deleted]
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("faces.sqlite3"))
    target = gallery._collections["c"]
    memory = target.by_photo._vectors.tobytes() + target.matrix._vectors.tobytes()
    compact = target.by_photo._codes.tobytes() + target.matrix._codes.tobytes()
    for record in deleted:
        blob = record.embedding.tobytes()
        assert blob not in files and blob[:256] not in files and blob[-256:] not in files
        assert blob not in memory
        assert quantize(record.embedding[None]).codes.tobytes() not in compact
        assert record.face_id.encode() not in files
    assert all(record.embedding.tobytes() in files and record.embedding.tobytes() in memory for record in kept)
    assert len(gallery.photos("c", None, 20)) == 10
    by_photo = {f"p{i}.jpg": [f for f in faces if f not in deleted] for i, faces in enumerate(photos)}
    for probe in vectors[[0, 6, 17, 23]]:  # the matrix the faces left in one pass still searches exactly
        hits, _ = all_pages(gallery, "c", probe, -1.0, 4)
        assert [(h.photo_id, h.face_id) for h in hits] == [(p, f) for p, f, _ in truth(probe, by_photo, -1.0)]
    gallery.close()


def test_postgres_a_deleted_persons_faces_have_no_row(pg: Maker, postgres_url: str) -> None:
    gallery: Any = pg()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(62), 4)
    first, second = index(gallery, "c", "a.jpg", vectors[:2]), index(gallery, "c", "b.jpg", vectors[2:])
    doomed = [first[0], second[1]]
    person = gallery.move_faces("c", [f.face_id for f in doomed], None)
    gallery.label_faces("c", [first[0].face_id], "ann")
    gallery.delete_person("c", person.person_id)
    with psycopg.connect(postgres_url) as conn:
        faces = conn.execute(
            "SELECT count(*) FROM gallery_faces WHERE face_id = ANY(%s)", ([f.face_id for f in doomed],)
        ).fetchone()
        people = conn.execute("SELECT count(*) FROM gallery_people").fetchone()
        members = conn.execute("SELECT count(*) FROM gallery_person_faces").fetchone()
        subjects = conn.execute("SELECT count(*) FROM gallery_subjects").fetchone()
        photos = conn.execute("SELECT array_agg(faces ORDER BY photo_id) FROM gallery_photos").fetchone()
    assert (faces, people, members, subjects, photos) == ((0,), (0,), (0,), (0,), ([1, 1],))


def test_postgres_a_deleted_photo_has_no_row(pg: Maker, postgres_url: str) -> None:
    gallery = pg()
    gallery.create_collection("c", MODEL, DIM, 0.3)
    vectors = unit(np.random.default_rng(59), 4)
    doomed = index(gallery, "c", "doomed.jpg", vectors[:2])
    index(gallery, "c", "kept.jpg", vectors[2:])
    gallery.delete_photo("c", "doomed.jpg")
    with psycopg.connect(postgres_url) as conn:
        faces = conn.execute(
            "SELECT count(*) FROM gallery_faces WHERE face_id = ANY(%s)", ([f.face_id for f in doomed],)
        ).fetchone()
        photos = conn.execute("SELECT array_agg(photo_id) FROM gallery_photos").fetchone()
    assert faces == (0,) and photos == (["kept.jpg"],)


def test_postgres_photo_search_through_the_hnsw_index_finds_the_photos_above_the_threshold(pg: Maker) -> None:
    """exact_below=0: every search goes through the index (strict-order iterative scan, stopped at the
    first face below the similarity); on a small collection it finds what the exact search finds."""
    approximate, exact = pg(exact_below=0), pg(exact_below=10**9)
    approximate.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(60)
    people = unit(rng, 5)
    for p in range(120):
        noisy = people[rng.integers(0, 5, 3)] + 0.7 * unit(rng, 3)
        index(approximate, "c", f"p{p:03d}", noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    for probe in people:
        fast: Any = approximate.search_photos("c", probe, 0.5, 1000, None)
        slow: Any = exact.search_photos("c", probe, 0.5, 1000, None)
        assert (fast.method, slow.method) == ("approximate", "exact")
        assert fast.count == slow.count > 0
        assert [(h.photo_id, h.face_id) for h in fast.hits] == [(h.photo_id, h.face_id) for h in slow.hits]
        paged = approximate.search_photos(
            "c", probe, 0.5, 3, PhotoCursor(fast.hits[2].similarity, fast.hits[2].photo_id)
        )
        assert [h.photo_id for h in paged.hits] == [h.photo_id for h in fast.hits[3:6]]


def one_search_per_probe(gallery: FaceGallery, probes: np.ndarray, floor: float, top_k: int) -> list[list[PhotoHit]]:
    return [gallery.search_photos("c", probe, floor, top_k, None).hits for probe in probes]


@pytest.mark.parametrize(("floor", "top_k"), [(-1.0, 3), (0.3, 5), (0.3, 1000)])
def test_photo_search_of_many_probes_finds_what_one_search_per_probe_finds(
    gallery: FaceGallery, floor: float, top_k: int
) -> None:
    """A new photo's faces searched together (the people's incremental path): 11 probes, past one
    group of probes sharing a pass over the matrix, some near a person, some near nobody."""
    gallery.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(53)
    people = unit(rng, 6)
    for p in range(50):
        count = int(rng.integers(1, 5))
        noisy = people[rng.integers(0, 6, count)] + 0.5 * unit(rng, count)
        index(gallery, "c", f"photo-{p:03d}", noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    gallery.add_face("c", face("decoy", people[0]))  # a subject's face: never a photo hit
    near = people[rng.integers(0, 6, 8)] + 0.3 * unit(rng, 8)
    probes = np.vstack([near / np.linalg.norm(near, axis=1, keepdims=True), unit(rng, 3)]).astype(np.float32)
    together = gallery.search_photos_many("c", probes, floor, top_k)
    assert together == one_search_per_probe(gallery, probes, floor, top_k)
    assert sum(len(hits) for hits in together) > 11  # not vacuous: most probes found photos
    assert gallery.search_photos_many("c", probes[:0], floor, top_k) == []


@pytest.mark.parametrize(("faces_per_photo", "top_k", "read_again"), [(3, 10, 0), (8, 21, 1)])
def test_postgres_photo_search_of_many_probes_through_the_index(
    pg: Maker, monkeypatch: pytest.MonkeyPatch, faces_per_photo: int, top_k: int, read_again: int
) -> None:
    """exact_below=0: one statement reads each probe's nearest faces through the index. With 3 faces
    of the probe's person per photo (alike, so the index reads them one after another), the first
    faces read settle the page (`top_k` photos above the last face read); with 8 a photo, they hold
    fewer than `top_k` photos, so that probe is searched again alone. Either way the hits are those of
    one search per probe."""
    from adapters.stores.postgres import search

    approximate = pg(exact_below=0)
    approximate.create_collection("c", MODEL, DIM, 0.3)
    rng = np.random.default_rng(61)
    person, others = unit(rng, 1)[0], unit(rng, 40)
    for p in range(40):
        alike = person + 0.4 * unit(rng, 1) + 0.03 * unit(rng, faces_per_photo)  # a photo's faces read in a row
        noisy = np.vstack([alike, others[p] + 0.4 * unit(rng, 2)])
        index(approximate, "c", f"p{p:03d}", noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    probes = np.vstack([person, unit(rng, 2)]).astype(np.float32)
    alone = one_search_per_probe(approximate, probes, 0.4, top_k)
    calls: list[int] = []
    single = search._photos_approximate

    def counted(*args: Any) -> Any:
        calls.append(1)
        return single(*args)

    monkeypatch.setattr(search, "_photos_approximate", counted)
    together = approximate.search_photos_many("c", probes, 0.4, top_k)
    assert together == alone and len(together[0]) == min(top_k, 40)
    assert len(calls) == read_again
