"""The embedded galleries' search (adapters/stores/matrix.py): a scan of the int8 copy, then an exact
re-rank, must return exactly what scoring every face exactly returns. Compared here with a brute-force
reference on random, clustered and adversarial vectors (ties, near-ties, quantization that reorders
the best faces, spiky and non-unit vectors), after deletes and imports, for single probes and groups;
and the error bound the re-rank relies on is checked against every face."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.stores import matrix as matrix_module
from adapters.stores.matrix import FaceMatrix, Scan, quantize
from adapters.stores.sqlite import SqliteGallery
from domain.gallery import FaceRecord, GalleryLimits, SubjectHit
from tests.integration.test_gallery_contract import MODEL, face

Hits = list[tuple[str, str, float]]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def reference(probes: np.ndarray, vectors: np.ndarray, owners: list[str], ids: list[str], top_k: int) -> list[Hits]:
    """Every face scored in float64, ranked by (score descending, face id), each subject once."""
    table = np.asarray(vectors, dtype=np.float64)
    out = []
    for probe in np.asarray(probes, dtype=np.float64):
        scores = (table * probe).sum(axis=1)
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
        seen: set[str] = set()
        hits: Hits = []
        for i in order:
            if owners[i] not in seen:
                seen.add(owners[i])
                hits.append((owners[i], ids[i], float(scores[i])))
        out.append(hits[:top_k])
    return out


def as_tuples(rows: list[list[SubjectHit]]) -> list[Hits]:
    return [[(hit.external_id, hit.face_id, hit.similarity) for hit in row] for row in rows]


def assert_exact(found: list[list[SubjectHit]], expected: list[Hits]) -> None:
    got = as_tuples(found)
    assert [[(name, face_id) for name, face_id, _ in row] for row in got] == [
        [(name, face_id) for name, face_id, _ in row] for row in expected
    ]
    for row, wanted in zip(got, expected, strict=True):
        assert np.allclose([s for _, _, s in row], [s for _, _, s in wanted], rtol=0, atol=1e-9)


class Collection:
    """A FaceMatrix and the plain lists it should hold, kept in step."""

    def __init__(self, dimension: int) -> None:
        self.matrix = FaceMatrix(dimension)
        self.vectors: list[np.ndarray] = []
        self.owners: list[str] = []
        self.ids: list[str] = []

    def add(self, vectors: np.ndarray, owners: list[str], ids: list[str] | None = None, wait: bool = True) -> list[str]:
        ids = ids or [uuid.uuid4().hex for _ in owners]
        self.matrix.append(ids, owners, np.asarray(vectors, dtype=np.float32))
        if wait:  # a large append is coded to int8 in the background
            assert self.matrix.wait_coded(timeout=60)
        self.vectors += list(np.asarray(vectors, dtype=np.float32))
        self.owners += owners
        self.ids += ids
        return ids

    def remove_face(self, face_id: str) -> None:
        assert self.matrix.remove_face(face_id)
        i = self.ids.index(face_id)
        del self.vectors[i], self.owners[i], self.ids[i]

    def remove_subject(self, name: str) -> None:
        assert self.matrix.remove_subject(name) == self.owners.count(name)
        keep = [i for i, owner in enumerate(self.owners) if owner != name]
        self.vectors = [self.vectors[i] for i in keep]
        self.owners = [self.owners[i] for i in keep]
        self.ids = [self.ids[i] for i in keep]

    def check(self, probes: np.ndarray, top_k: int) -> None:
        """Both scans, single probes and the whole group at once, equal the reference."""
        expected = reference(probes, np.stack(self.vectors), self.owners, self.ids, top_k)
        for scan in ("int8", "float32"):
            hits, searched = self.matrix.search(probes, top_k, scan=scan)
            assert searched == len(self.ids)
            assert_exact(hits, expected)
        one_by_one = [self.matrix.search(probe[None], top_k)[0][0] for probe in probes]
        assert_exact(one_by_one, expected)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Split scans of a few thousand rows into chunks shared by threads, as a million rows would be."""
    monkeypatch.setattr(matrix_module, "PART_ROWS", 256)
    monkeypatch.setattr(matrix_module, "SCAN_ROWS", 4 * matrix_module.BLOCK_ROWS)
    yield


def clustered(rng: np.random.Generator, subjects: int, per: int, dimension: int, same: float = 0.6) -> np.ndarray:
    """Faces like a recogniser's: each subject a direction, its faces that plus noise (cosine ~`same`)."""
    identities = unit_rows(rng.standard_normal((subjects, dimension)))
    noise = np.sqrt((1 / same - 1) / dimension)
    faces = np.repeat(identities, per, axis=0) + noise * rng.standard_normal((subjects * per, dimension))
    return unit_rows(faces)


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize("top_k", [1, 5, 40])
def test_search_equals_the_exact_search(kind: str, top_k: int, small_parts: None) -> None:
    rng = np.random.default_rng(1)
    dimension, subjects, per = 128, 700, 4
    if kind == "uniform":
        vectors = unit_rows(rng.standard_normal((subjects * per, dimension)))
    else:
        vectors = clustered(rng, subjects, per, dimension)
    collection = Collection(dimension)
    collection.add(vectors, [f"s{i // per}" for i in range(len(vectors))])
    # Probes: new faces of enrolled subjects (a clear best), and random directions (no clear best).
    own = unit_rows(vectors[rng.choice(len(vectors), 7)] + 0.05 * rng.standard_normal((7, dimension)))
    probes = np.vstack([own, unit_rows(rng.standard_normal((12, dimension)))])  # 19: more than one group
    collection.check(probes, top_k)


def test_search_stays_exact_through_deletes_and_imports(small_parts: None) -> None:
    rng = np.random.default_rng(2)
    dimension = 96
    collection = Collection(dimension)
    vectors = clustered(rng, 400, 5, dimension)
    ids = collection.add(vectors, [f"s{i // 5}" for i in range(len(vectors))])
    probes = unit_rows(vectors[rng.choice(len(vectors), 6)] + 0.1 * rng.standard_normal((6, dimension)))
    collection.check(probes, 5)

    # Delete each probe's best faces and subjects: the next best must come up, exactly.
    for name, face_id, _ in reference(probes[:3], np.stack(collection.vectors), collection.owners, collection.ids, 2)[
        0
    ]:
        collection.remove_face(face_id)
        collection.remove_subject(name) if name in collection.owners else None
    for face_id in rng.choice(ids, 300, replace=False):
        if face_id in collection.ids:
            collection.remove_face(str(face_id))
    collection.check(probes, 5)

    # An import: new subjects, some near the probes, and more faces for existing ones.
    more = np.vstack([clustered(rng, 100, 3, dimension), unit_rows(probes + 0.02 * rng.standard_normal(probes.shape))])
    owners = [f"new{i // 3}" for i in range(300)] + [f"s{i}" for i in range(6)]
    collection.add(more, owners)
    collection.check(probes, 5)
    collection.check(probes, 1)

    collection.matrix.clear()
    assert collection.matrix.search(probes, 5) == ([[] for _ in probes], 0)


def test_exact_ties_are_broken_by_face_id_the_same_way() -> None:
    """Equal vectors under different subjects and in one subject: equal scores, ordered by face id."""
    rng = np.random.default_rng(3)
    dimension = 64
    collection = Collection(dimension)
    base = unit_rows(rng.standard_normal((5, dimension)))
    vectors = np.repeat(base, 30, axis=0)  # each of 5 vectors 30 times
    owners = [f"s{i % 45}" for i in range(len(vectors))]
    ids = [f"{i * 7919 % 150:032x}" for i in range(len(vectors))]  # ids not in row order
    collection.add(vectors, owners, ids)
    collection.add(unit_rows(rng.standard_normal((200, dimension))), [f"r{i}" for i in range(200)])
    probes = np.vstack([base, unit_rows(base + 0.3 * rng.standard_normal(base.shape))])
    collection.check(probes, 10)
    collection.check(probes, 60)
    # Every face identical: all scores tie, no pass can narrow it down; still exact.
    same = Collection(dimension)
    same.add(np.repeat(base[:1], 500, axis=0), [f"s{i % 97}" for i in range(500)])
    same.check(probes, 7)


def test_near_ties_that_int8_reorders_are_ranked_exactly() -> None:
    """Faces a hair apart (below int8's resolution, down to one float32 step): the int8 scan ranks them
    wrongly, and the re-rank must put them back in their exact order."""
    rng = np.random.default_rng(4)
    dimension = 128
    center = unit_rows(rng.standard_normal((1, dimension)))[0]
    offsets = rng.standard_normal((400, dimension)) * np.logspace(-7, -3, 400)[:, None]
    vectors = unit_rows(center + offsets)
    ulp = vectors[:20].copy()
    ulp[:, 0] = np.nextafter(ulp[:, 0], np.float32(2))  # one float32 step from vectors[:20]
    vectors = np.vstack([vectors, ulp, unit_rows(rng.standard_normal((300, dimension)))])
    owners = [f"s{i}" for i in range(len(vectors))]
    collection = Collection(dimension)
    ids = collection.add(vectors, owners)
    probes = unit_rows(center + 1e-3 * rng.standard_normal((5, dimension)))

    # The test is worth having only if the int8 order is wrong here: check that it is.
    compact = quantize(vectors)
    q = quantize(probes)
    approximate = (q.codes.astype(np.int64) @ compact.codes.astype(np.int64).T) * compact.scales
    exact = probes.astype(np.float64) @ vectors.astype(np.float64).T
    assert any(
        list(np.argsort(-row_a)[:10]) != list(np.argsort(-row_e)[:10])
        for row_a, row_e in zip(approximate, exact, strict=True)
    )
    collection.check(probes, 10)
    collection.check(probes, 1)
    assert ids  # every face got an id


def test_the_int8_bound_holds_for_every_face() -> None:
    """The first pass's upper bound is above every true score, for dense and spiky unit vectors, long,
    short and zero ones; and tight enough to be of use, each face's own scale widening only its bound."""
    rng = np.random.default_rng(5)
    dimension = 256
    dense = unit_rows(rng.standard_normal((500, dimension)))
    spiky = unit_rows(rng.standard_normal((100, dimension)) * 0.01 + np.eye(dimension)[:100])
    long = 7.5 * unit_rows(rng.standard_normal((50, dimension)))
    short = 1e-3 * unit_rows(rng.standard_normal((50, dimension)))
    zero = np.zeros((1, dimension), np.float32)
    probes = np.vstack([unit_rows(rng.standard_normal((6, dimension))), spiky[:2]]).astype(np.float32)
    for vectors in (np.vstack([dense, spiky]), np.vstack([dense, spiky, long, short, zero])):
        collection = Collection(dimension)
        collection.add(vectors, [f"s{i}" for i in range(len(vectors))])
        coarse = collection.matrix._int8_scores(probes, len(vectors))
        exact = probes.astype(np.float64) @ vectors.astype(np.float64).T
        estimate = quantize(probes)
        upper = coarse.scores[:, : len(vectors)] * coarse.units[:, None] + coarse.bounds[:, None]
        assert (upper >= exact).all()
        slack = upper - exact
        assert slack.min() > 0 and np.median(slack[:, :500]) < 0.05 + 0.2 * (len(vectors) > 600)
        # Every block's best is its best score (padding rows are -inf).
        scores = coarse.scores.copy()
        scores[:, len(vectors) :] = -np.inf
        best = scores.reshape(len(probes), -1, matrix_module.BLOCK_ROWS).max(axis=2)
        assert np.array_equal(coarse.block_best, best)
        assert estimate.codes.shape == probes.shape
        collection.check(probes, 5)
    # Unit vectors only (the stores' contract): dense probes' bounds on dense faces stay within a few
    # hundredths; a spiky face's coarse scale widens its own bound only.
    collection = Collection(dimension)
    collection.add(np.vstack([dense, spiky]), [f"s{i}" for i in range(600)])
    coarse = collection.matrix._int8_scores(probes, 600)
    exact = probes.astype(np.float64) @ np.vstack([dense, spiky]).astype(np.float64).T
    upper = coarse.scores[:, :600] * coarse.units[:, None] + coarse.bounds[:, None]
    assert (upper[:6, :500] - exact[:6, :500]).max() < 0.05
    assert (upper[:6, 500:] - exact[:6, 500:]).min() > 0.05


def test_restricted_search_is_exact_and_ignores_other_subjects() -> None:
    rng = np.random.default_rng(6)
    collection = Collection(32)
    vectors = unit_rows(rng.standard_normal((120, 32)))
    owners = [f"s{i % 6}" for i in range(120)]
    ids = collection.add(vectors, owners)
    probes = unit_rows(rng.standard_normal((3, 32)))
    hits, searched = collection.matrix.search(probes, 3, external_id="s4")
    mine = [i for i, owner in enumerate(owners) if owner == "s4"]
    assert searched == len(mine)
    assert_exact(hits, reference(probes, vectors[mine], ["s4"] * len(mine), [ids[i] for i in mine], 3))
    assert collection.matrix.search(probes, 3, external_id="nobody") == ([[], [], []], 0)


def test_a_deleted_face_is_gone_from_both_copies() -> None:
    rng = np.random.default_rng(7)
    dimension = 128
    collection = Collection(dimension)
    vectors = unit_rows(rng.standard_normal((300, dimension)))
    ids = collection.add(vectors, [f"s{i % 30}" for i in range(300)])
    codes = quantize(vectors).codes
    single = {i for i in range(300) if i % 7 == 0 and i % 30 != 3}
    for i in single:
        collection.remove_face(ids[i])
    collection.remove_subject("s3")
    gone = single | {i for i in range(300) if i % 30 == 3}
    collection.add(unit_rows(rng.standard_normal((200, dimension))), [f"t{i}" for i in range(200)])  # grows

    matrix = collection.matrix
    floats, compact = matrix._vectors.tobytes(), matrix._codes.tobytes()
    for i in range(300):
        present = i not in gone
        assert (vectors[i].tobytes() in floats) is present, i
        assert (codes[i].tobytes() in compact) is present, i
    matrix.clear()
    assert not matrix._vectors.any() and not matrix._codes.any()


def test_a_group_is_one_pass_over_the_int8_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight probes read the int8 copy once (numkong's packed product), not eight times."""
    rng = np.random.default_rng(8)
    collection = Collection(64)
    collection.add(unit_rows(rng.standard_normal((1000, 64))), [f"s{i}" for i in range(1000)])
    calls: list[tuple[str, int]] = []
    real_cdist, real_packed = matrix_module.numkong.cdist, matrix_module.numkong.dots_packed

    def cdist(a: Any, b: Any, **options: Any) -> Any:
        calls.append(("cdist", len(b)))
        return real_cdist(a, b, **options)

    def dots_packed(a: Any, b: Any, **options: Any) -> Any:
        calls.append(("dots_packed", len(a)))
        return real_packed(a, b, **options)

    monkeypatch.setattr(matrix_module.numkong, "cdist", cdist)
    monkeypatch.setattr(matrix_module.numkong, "dots_packed", dots_packed)
    probes = unit_rows(rng.standard_normal((8, 64)))
    collection.matrix.search(probes, 3)
    assert calls == [("dots_packed", 1000)]
    calls.clear()
    collection.matrix.search(probes[:1], 3)
    assert calls == [("cdist", 1000)]


def test_a_vector_with_nan_falls_back_to_the_float32_scan() -> None:
    """No bound holds for NaN: the int8 scan is not used once such a row was added, and nothing fails."""
    collection = FaceMatrix(8)
    collection.append(["a" * 32, "b" * 32], ["x", "y"], np.array([[1] + [0] * 7, [np.nan] * 8], dtype=np.float32))
    assert not collection._finite
    hits, searched = collection.search(np.array([[1] + [0] * 7], dtype=np.float32), 2)
    assert searched == 2 and hits[0][0] == SubjectHit("x", "a" * 32, 1.0)


def test_rows_not_coded_yet_are_searched_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large append is coded in the background; until then its rows are scanned in float32 beside the
    coded ones, with the same guarantee. Deletes that move such rows into the coded part code them."""
    rng = np.random.default_rng(10)
    dimension = 64
    collection = Collection(dimension)
    collection.add(clustered(rng, 100, 5, dimension), [f"s{i // 5}" for i in range(500)])  # coded at once
    assert collection.matrix._coded == 500
    monkeypatch.setattr(FaceMatrix, "_code_backlog", lambda self: None)  # the coder does nothing
    late = clustered(rng, 500, 5, dimension)
    ids = collection.add(late, [f"t{i // 5}" for i in range(2500)], wait=False)
    assert collection.matrix._coded == 500 and not collection.matrix.wait_coded(timeout=0.1)
    probes = unit_rows(
        np.vstack([late[::600], collection.vectors[0][None]]) + 0.05 * rng.standard_normal((6, dimension))
    )
    collection.check(probes, 5)

    for face_id in [collection.ids[i] for i in (3, 77, 499)] + ids[-20:]:
        collection.remove_face(face_id)  # rows from the uncoded tail move into the coded prefix
    matrix = collection.matrix
    assert matrix._coded == 500  # its three holes filled with rows from the tail, coded on the way in
    assert np.array_equal(matrix._codes[:500], quantize(matrix._vectors[:500]).codes)
    collection.check(probes, 5)

    monkeypatch.undo()  # the next append starts a coder that works
    collection.add(unit_rows(rng.standard_normal((3, dimension))), ["u0", "u1", "u2"])
    n = len(collection.ids)
    assert matrix._coded == n and np.array_equal(matrix._codes[:n], quantize(matrix._vectors[:n]).codes)
    collection.check(probes, 5)


def test_the_background_coder_keeps_up_with_deletes_and_searches() -> None:
    """Deletes and searches while the coder works: every search exact, every code right in the end."""
    rng = np.random.default_rng(11)
    dimension = 64
    collection = Collection(dimension)
    vectors = clustered(rng, 4000, 5, dimension)
    probes = unit_rows(vectors[::5000] + 0.05 * rng.standard_normal((4, dimension)))
    ids = collection.add(vectors, [f"s{i // 5}" for i in range(len(vectors))], wait=False)
    for step, face_id in enumerate(rng.choice(ids, 60, replace=False)):
        collection.remove_face(str(face_id))
        if step % 15 == 0:
            collection.check(probes, 3)
    # More rows than the arrays hold: they are replaced (and the old ones zeroed) while the coder works.
    collection.add(clustered(rng, 3000, 5, dimension), [f"t{i // 5}" for i in range(15_000)], wait=False)
    collection.check(probes, 3)
    assert collection.matrix.wait_coded(timeout=60)
    matrix, n = collection.matrix, len(collection.ids)
    assert np.array_equal(matrix._codes[:n], quantize(matrix._vectors[:n]).codes)
    assert np.array_equal(matrix._scales[:n], quantize(matrix._vectors[:n]).scales)
    collection.check(probes, 3)


def test_sqlite_search_is_exact_after_reopening_deleting_and_importing(tmp_path: Path) -> None:
    """The SQLite gallery's matrix as loaded at open, then changed: its searches equal the reference."""
    rng = np.random.default_rng(9)
    dimension = 128
    limits = GalleryLimits(5, 10_000, 50, 100_000)
    path = tmp_path / "faces.sqlite3"
    gallery = SqliteGallery(path, limits)
    gallery.create_collection("c", MODEL, dimension, 0.3)
    vectors = clustered(rng, 300, 4, dimension)
    records = gallery.add_faces("c", [face(f"s{i // 4}", vectors[i]) for i in range(len(vectors))])
    gallery.close()

    gallery = SqliteGallery(path, limits)  # the matrices (both copies) are built from the file
    try:
        kept = {record.face_id: record for record, _ in records}
        for record, _ in records[::9]:
            gallery.delete_face("c", record.face_id)
            del kept[record.face_id]
        gallery.delete_subject("c", "s17")
        kept = {face_id: r for face_id, r in kept.items() if r.external_id != "s17"}
        extra = [face(f"n{i}", v) for i, v in enumerate(clustered(rng, 50, 1, dimension))]
        kept.update({r.face_id: r for r, _ in gallery.add_faces("c", extra)})

        faces: list[FaceRecord] = list(kept.values())
        probes = unit_rows(vectors[rng.choice(len(vectors), 9)] + 0.05 * rng.standard_normal((9, dimension)))
        outcome = gallery.search("c", probes, top_k=5)
        assert outcome.searched == len(faces)
        expected = reference(
            probes,
            np.stack([f.embedding for f in faces]),
            [f.external_id for f in faces],
            [f.face_id for f in faces],
            5,
        )
        assert_exact(outcome.hits, expected)
    finally:
        gallery.close()


def test_face_ids_kept_as_bytes_keep_their_spelling_order_and_identity() -> None:
    """Face ids are kept as the 16 bytes their hex spells: ids ending in zero bytes (which numpy's
    fixed-width bytes would drop) come back whole, ties are still ordered by the id's text, and a
    delete removes that id only."""
    rng = np.random.default_rng(21)
    dimension = 32
    collection = Collection(dimension)
    ids = ["0" * 32, "f" * 32, "ab" + "0" * 30, "ab" + "0" * 28 + "01", "00" * 15 + "10", "10" + "00" * 15]
    same = np.repeat(unit_rows(rng.standard_normal((1, dimension))), len(ids), axis=0)  # every score ties
    collection.add(same, [f"s{i}" for i in range(len(ids))], ids)
    collection.add(unit_rows(rng.standard_normal((100, dimension))), [f"r{i}" for i in range(100)])
    hits, _ = collection.matrix.search(same[:1], len(ids))
    assert [hit.face_id for hit in hits[0]] == sorted(ids)  # whole, and in the order of their text
    collection.check(same[:1], 8)

    for wrong in ["AB" + "0" * 30, "ab" + "0" * 29, "ab" + "0" * 31, "ab" + "0" * 28 + "g1", "é" * 32, ""]:
        assert not collection.matrix.remove_face(wrong)
        with pytest.raises(ValueError):
            collection.matrix.append([wrong], ["x"], same[:1])
    assert len(collection.matrix) == len(collection.ids) and not collection.matrix.has_subject("x")
    collection.remove_face("ab" + "0" * 30)  # not its neighbour ending in 01
    collection.remove_face("0" * 32)
    assert collection.matrix.search(same[:1], 3)[0][0][0].face_id == "00" * 15 + "10"
    collection.check(same[:1], 8)


def test_a_scan_never_waits_for_a_helper_that_does_not_start(
    monkeypatch: pytest.MonkeyPatch, small_parts: None
) -> None:
    """On busy cores a helper thread may start late or not at all: the caller scans every chunk itself
    and the result is exact; a chunk that fails fails the search."""

    class Stalled:
        def submit(self, *args: Any) -> None:  # the job never runs
            pass

    rng = np.random.default_rng(22)
    collection = Collection(48)
    collection.add(clustered(rng, 300, 5, 48), [f"s{i // 5}" for i in range(1500)])
    probes = unit_rows(np.stack(collection.vectors)[:6] + 0.1 * rng.standard_normal((6, 48)))
    monkeypatch.setattr(matrix_module, "_pool", lambda: Stalled())
    collection.check(probes, 5)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(matrix_module.numkong, "cdist", failing)
    with pytest.raises(RuntimeError, match="kernel failed"):
        collection.matrix.search(probes[:1], 5)


def test_sqlite_quarantines_a_collection_whose_face_id_is_not_hex(tmp_path: Path) -> None:
    """The load reads face ids in bulk and checks them the same way: one that no write could have
    stored quarantines its collection, and the others are served, exactly."""
    import sqlite3

    rng = np.random.default_rng(23)
    dimension = 16
    limits = GalleryLimits(5, 10_000, 50, 100_000)
    path = tmp_path / "faces.sqlite3"
    gallery = SqliteGallery(path, limits)
    stored = {}
    for name in ("good", "bad"):
        gallery.create_collection(name, MODEL, dimension, 0.3)
        vectors = unit_rows(rng.standard_normal((40, dimension)))
        stored[name] = [r for r, _ in gallery.add_faces(name, [face(f"s{i}", v) for i, v in enumerate(vectors)])]
    gallery.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE faces SET face_id = upper(face_id) WHERE seq = (SELECT max(seq) FROM faces"
            " WHERE collection_id = (SELECT id FROM collections WHERE name = 'bad'))"
        )

    gallery = SqliteGallery(path, limits)
    try:
        assert [q.name for q in gallery.health().quarantined] == ["bad"]
        faces = stored["good"]
        probes = unit_rows(rng.standard_normal((3, dimension)))
        owners, ids = [f.external_id for f in faces], [f.face_id for f in faces]
        expected = reference(probes, np.stack([f.embedding for f in faces]), owners, ids, 4)
        assert_exact(gallery.search("good", probes, top_k=4).hits, expected)
    finally:
        gallery.close()


@pytest.mark.parametrize("scan", ["int8", "float32"])
def test_groups_reaching_many_is_each_probes_first_page(monkeypatch: pytest.MonkeyPatch, scan: Scan) -> None:
    """A photo's faces searched together (people's incremental path) find, per probe, what
    `groups_reaching` finds alone: 11 probes (past one group), rows coded and rows not coded yet."""
    rng = np.random.default_rng(12)
    dimension = 64
    matrix = FaceMatrix(dimension)
    first = clustered(rng, 100, 5, dimension)
    matrix.append([f"{i:032x}" for i in range(500)], [f"photo-{i // 3}" for i in range(500)], first)
    monkeypatch.setattr(FaceMatrix, "_code_backlog", lambda self: None)  # the tail stays in float32
    late = clustered(rng, 400, 5, dimension)
    matrix.append([f"{i:032x}" for i in range(500, 2500)], [f"photo-{i // 4}" for i in range(500, 2500)], late)
    assert matrix._coded == 500
    probes = unit_rows(np.vstack([first[::60], late[::500]]) + 0.1 * rng.standard_normal((13, dimension)))[:11]
    for floor, top_k in ((0.3, 17), (-1.0, 5), (0.5, 1000)):
        together = matrix.groups_reaching_many(probes, floor, top_k, scan=scan)
        alone = [matrix.groups_reaching(p, floor, top_k, scan=scan)[0] for p in probes]
        assert together == alone
        assert all(hits for hits in together)
