"""People at 100k faces through the service's own path, on SQLite and PostgreSQL (issue 22's cost).

    uv run python -m bench.people_cost [--faces 100000] [--photos 300] [--group-photos 50]
        [--stores sqlite,postgresql]

bench/people.py's synthetic faces (identities with siblings, long-tailed sizes, photos of 1-5
faces) are loaded into a collection as unlabelled photo faces; then, per store:

- the full pass, `People.recluster`, timed by stage (reading the faces, the kNN graph, the pass,
  storing the people);
- `--photos` more photos of the same synthetic set (faces of people already seen, and of people not
  seen yet) indexed one at a time through `Photos.index`, the use case the route calls, with
  `People.assign_new` as its `on_indexed`: p50/p99 of the whole call and of the people part, and
  how the faces joined (the person most of their identity's faces are in, another, or none yet);
  then `--group-photos` photos of 10 faces the same way;
- the same photos' neighbour searches again, read-only: all faces of a photo together
  (`search_photos_many`, what `assign_new` does) against one `search_photos` per face (what it did
  before), in the same run, on the same warm store.

PostgreSQL is the tests' throwaway pgserver (or `--postgres-url`), with its HNSW index built after
the load, as bench/photo_search.py does; at 100k faces its photo search goes through the index. Its
index scans for one photo are counted (pg_stat_user_indexes), together and one search per face: the
batched statement reads the index as the single searches do. Writes bench/results/people_cost.json
(git-ignored) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from adapters.people.neighbours import FaissNeighbours
from adapters.stores.postgres.gallery import PostgresGallery
from adapters.stores.sqlite import SqliteGallery
from bench.people import synthetic
from bench.search import MODEL, limits, percentile, postgres
from domain.gallery import FaceRecord
from domain.model import BoundingBox, DetectedFace, EmbeddedFace, EmbeddingModel
from domain.people import DEFAULT_RULES
from domain.use_cases.collections import CollectionRules
from domain.use_cases.faces import Extraction
from domain.use_cases.people import People
from domain.use_cases.photos import PhotoFaces, PhotoOptions, Photos

RESULTS = Path(__file__).parent / "results" / "people_cost.json"
RULES = CollectionRules(default_threshold=0.3, default_top_k=10, max_top_k=100, max_page=1000)
LOAD_BLOCK = 10_000
GROUP_FACES = 10
BOX = BoundingBox(10.0, 10.0, 110.0, 130.0)
LANDMARKS = ((40.0, 60.0), (80.0, 60.0), (60.0, 85.0), (45.0, 110.0), (75.0, 110.0))


class Data:
    """The synthetic faces split on a photo boundary: the first `faces` loaded, the next `photos`
    photos indexed one at a time."""

    def __init__(self, faces: int, photos: int, groups: int) -> None:
        vectors, identity, photo = synthetic(faces + 6 * photos + GROUP_FACES * groups)
        first_new = int(photo[faces]) if photo[faces - 1] != photo[faces] else int(photo[faces]) + 1
        loaded = photo < first_new
        self.vectors, self.identity, self.photo = vectors[loaded], identity[loaded], photo[loaded]
        self.new: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]] = []
        for p in range(first_new, first_new + photos):
            members = photo == p
            self.new.append((vectors[members], identity[members]))
        # Group photos: the next faces, GROUP_FACES a photo.
        start = int(np.flatnonzero(photo == first_new + photos)[0])
        self.groups = [
            (vectors[lo : lo + GROUP_FACES], identity[lo : lo + GROUP_FACES])
            for lo in range(start, start + GROUP_FACES * groups, GROUP_FACES)
        ]

    def records(self, created_at: datetime) -> Any:
        """The loaded faces in blocks of whole photos (one block, one transaction)."""
        start, count = 0, len(self.vectors)
        while start < count:
            end = min(count, start + LOAD_BLOCK)
            while end < count and self.photo[end] == self.photo[end - 1]:
                end += 1
            digests = {int(p): uuid.uuid4().hex * 2 for p in np.unique(self.photo[start:end])}
            yield [
                FaceRecord(
                    uuid.uuid4().hex,
                    None,
                    self.vectors[i],
                    (BOX.x1, BOX.y1, BOX.x2, BOX.y2),
                    0.9,
                    digests[int(self.photo[i])],
                    created_at,
                    photo_id=f"photo-{int(self.photo[i]):07d}",
                )
                for i in range(start, end)
            ]
            start = end


def load(gallery: Any, data: Data) -> tuple[float, dict[str, int]]:
    """Faces per second, and the face id -> identity of what was loaded."""
    identity: dict[str, int] = {}
    now = datetime.now(UTC)
    elapsed, offset = 0.0, 0
    for batch in data.records(now):
        began = time.perf_counter()
        gallery.add_faces("bench", batch)
        elapsed += time.perf_counter() - began
        for record in batch:
            identity[record.face_id] = int(data.identity[offset])
            offset += 1
    return len(data.vectors) / elapsed, identity


def recluster(people: People) -> dict[str, Any]:
    stages: list[tuple[str, float]] = []
    began = time.perf_counter()
    outcome = people.recluster("bench", lambda stage, done: stages.append((stage, time.perf_counter())))
    total = time.perf_counter() - began
    # A stage lasts from its progress call to the next one.
    names = {"reading": "reading_s", "neighbours": "knn_graph_s", "grouping": "pass_s", "storing": "storing_people_s"}
    by_stage = {
        names[stage]: round(following[1] - moment, 2)
        for (stage, moment), following in itertools.pairwise(stages)
        if stage in names
    }
    return {
        "total_s": round(total, 2),
        **by_stage,
        "faces": outcome.faces,
        "people": outcome.people,
        "faces_in_people": outcome.assigned,
    }


def majority_person(gallery: Any, identity: dict[str, int]) -> dict[int, str]:
    """Each identity's person: the one most of its faces are in."""
    votes: dict[int, Counter[str]] = {}
    for face_id, person in gallery.memberships("bench").items():
        if face_id in identity:
            votes.setdefault(identity[face_id], Counter())[person] += 1
    return {who: counts.most_common(1)[0][0] for who, counts in votes.items()}


MODEL_USED = EmbeddingModel("bench", "synthetic", 512)  # bench.search's MODEL id


def photo_faces(vectors: npt.NDArray[np.float32], digest: str) -> PhotoFaces:
    found = [DetectedFace(BOX, 0.9, LANDMARKS) for _ in vectors]
    embedded = [EmbeddedFace(face, vector, MODEL_USED) for face, vector in zip(found, vectors, strict=True)]
    return PhotoFaces(digest, found, Extraction(640, 480, embedded, len(embedded)))


def index_photos(
    gallery: Any,
    people: People,
    new: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]],
    prefix: str,
    person_of_identity: dict[int, str],
) -> tuple[dict[str, Any], list[list[FaceRecord]]]:
    assign_ms: list[float] = []

    def timed_assign(name: str, faces: list[FaceRecord]) -> list[str | None]:
        began = time.perf_counter()
        joined = people.assign_new(name, faces)
        assign_ms.append((time.perf_counter() - began) * 1000)
        outcomes.append(joined)
        return joined

    outcomes: list[list[str | None]] = []
    # People.assign_new as Collections wires it into Photos, timed.
    photos = Photos(gallery, lambda: MODEL_USED, RULES, lambda: datetime.now(UTC), on_indexed=timed_assign)
    options = PhotoOptions(min_quality=None)
    index_ms: list[float] = []
    stored: list[list[FaceRecord]] = []
    right = wrong = waiting = 0
    for number, (vectors, identities) in enumerate(new):
        began = time.perf_counter()
        indexed = photos.index("bench", f"{prefix}-{number:05d}", photo_faces(vectors, uuid.uuid4().hex * 2), options)
        index_ms.append((time.perf_counter() - began) * 1000)
        stored.append(indexed.faces)
        for who, person in zip(identities.tolist(), outcomes[-1], strict=True):
            if person is None:
                waiting += 1
            elif person_of_identity.get(who) == person:
                right += 1
            else:
                wrong += 1
    faces = [len(vectors) for vectors, _ in new]
    return {
        "photos": len(new),
        "faces": sum(faces),
        "faces_per_photo": dict(sorted(Counter(faces).items())),
        "index_call_ms_p50": round(percentile(index_ms, 50), 2),
        "index_call_ms_p99": round(percentile(index_ms, 99), 2),
        "people_part_ms_p50": round(percentile(assign_ms, 50), 2),
        "people_part_ms_p99": round(percentile(assign_ms, 99), 2),
        "people_part_ms_p50_of_5_face_photos": round(
            statistics.median([ms for ms, n in zip(assign_ms, faces, strict=True) if n == 5] or [0.0]), 2
        ),
        "faces_joined_their_identitys_person": right,
        "faces_joined_another_person": wrong,
        "faces_waiting_for_the_next_pass": waiting,
    }, stored


def searches(gallery: Any, stored: Sequence[list[FaceRecord]], rules: Any = DEFAULT_RULES) -> dict[str, Any]:
    """The neighbour searches of the photos indexed, again: together, and one per face."""
    floor, top_k = rules.link_similarity, rules.neighbours + 1
    together: list[float] = []
    one_by_one: list[float] = []
    same = 0
    for faces in stored:
        probes = np.stack([face.embedding for face in faces])
        began = time.perf_counter()
        many = gallery.search_photos_many("bench", probes, floor, top_k)
        together.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        single = [gallery.search_photos("bench", probe, floor, top_k, None).hits for probe in probes]
        one_by_one.append((time.perf_counter() - began) * 1000)
        same += many == single
    return {
        "together_ms_p50": round(percentile(together, 50), 2),
        "together_ms_p99": round(percentile(together, 99), 2),
        "one_search_per_face_ms_p50": round(percentile(one_by_one, 50), 2),
        "one_search_per_face_ms_p99": round(percentile(one_by_one, 99), 2),
        "identical_hits": f"{same}/{len(stored)}",
    }


def hnsw_scans(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname LIKE '%hnsw'"
        ).fetchone()
    return int(row[0]) if row else 0


def index_scans(gallery: PostgresGallery, url: str, data: Data) -> dict[str, int]:
    """The HNSW index scans (pg_stat_user_indexes) of one 5-face photo's neighbour searches, together
    and one per face: the same count says the batched statement reads the index as the single
    searches do. A backend flushes its statistics when idle, at least 1 s apart, or 10 s later."""
    probes = max((vectors for vectors, _ in data.new), key=len)
    floor, top_k = DEFAULT_RULES.link_similarity, DEFAULT_RULES.neighbours + 1
    counts = {"faces": len(probes)}
    for name, search in (
        ("together", lambda: gallery.search_photos_many("bench", probes, floor, top_k)),
        ("one_search_per_face", lambda: [gallery.search_photos("bench", p, floor, top_k, None) for p in probes]),
    ):
        time.sleep(11)
        before = hnsw_scans(url)
        search()
        time.sleep(11)
        counts[name] = hnsw_scans(url) - before
    return counts


def measure(gallery: Any, data: Data, identity: dict[str, int], after_load: Callable[[], None]) -> dict[str, Any]:
    after_load()
    people = People(gallery, gallery, FaissNeighbours(), RULES)
    result: dict[str, Any] = {"full_pass": recluster(people)}
    print(json.dumps(result), flush=True)
    person_of_identity = majority_person(gallery, identity)
    result["index_one_photo_at_a_time"], stored = index_photos(gallery, people, data.new, "new", person_of_identity)
    print(json.dumps(result["index_one_photo_at_a_time"]), flush=True)
    result["index_group_photos_one_at_a_time"], groups = index_photos(
        gallery, people, data.groups, "group", person_of_identity
    )
    print(json.dumps(result["index_group_photos_one_at_a_time"]), flush=True)
    result["neighbour_searches_of_those_photos"] = searches(gallery, stored)
    result["neighbour_searches_of_the_group_photos"] = searches(gallery, groups)
    return result


def bench_sqlite(data: Data, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-people-", dir=args.tmp))
    try:
        gallery = SqliteGallery(folder / "faces.sqlite3", limits(2 * len(data.vectors)))
        gallery.create_collection("bench", MODEL, 512, 0.3)
        rate, identity = load(gallery, data)
        result = {"load_faces_per_s": round(rate)}
        result.update(measure(gallery, data, identity, lambda: gallery._collections["bench"].by_photo.wait_coded()))
        gallery.close()
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_postgres(url: str, data: Data) -> dict[str, Any]:
    database = f"people_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"'.encode())
    database_url = psycopg.conninfo.make_conninfo(url, dbname=database)
    gallery = PostgresGallery(database_url, limits(2 * len(data.vectors)))
    try:
        gallery.create_collection("bench", MODEL, 512, 0.3)
        gallery.drop_index("bench")
        rate, identity = load(gallery, data)
        result: dict[str, Any] = {"load_faces_per_s": round(rate)}

        def build() -> None:
            began = time.perf_counter()
            gallery.build_index("bench", maintenance_work_mem=f"{max(64, len(data.vectors) * 512 * 6 // 2**20)}MB")
            result["index_build_s"] = round(time.perf_counter() - began, 1)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")

        result.update(measure(gallery, data, identity, build))
        result["hnsw_index_scans_for_one_photo"] = index_scans(gallery, database_url, data)
        return result
    finally:
        gallery.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--photos", type=int, default=300, help="photos of 1-5 faces indexed one at a time")
    parser.add_argument("--group-photos", type=int, default=50, help=f"photos of {GROUP_FACES} faces, after them")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--shared-buffers", default="1GB", help="for the pgserver instance started here")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stores = args.stores.split(",")
    data = Data(args.faces, args.photos, args.group_photos)
    results: dict[str, Any] = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_average_at_start": [round(v, 1) for v in os.getloadavg()],
        },
        "faces": len(data.vectors),
        "rules": {"link_similarity": DEFAULT_RULES.link_similarity, "neighbours": DEFAULT_RULES.neighbours},
    }
    with postgres(args) if "postgresql" in stores else contextlib.nullcontext("") as url:
        if "sqlite" in stores:
            results["sqlite"] = bench_sqlite(data, args)
            print(json.dumps({"sqlite": results["sqlite"]}), flush=True)
        if "postgresql" in stores:
            results["postgresql"] = bench_postgres(url, data)
            print(json.dumps({"postgresql": results["postgresql"]}), flush=True)
    results["machine"]["load_average_at_end"] = [round(v, 1) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
