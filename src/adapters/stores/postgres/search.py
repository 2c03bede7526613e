"""Searching a collection's partition: exact (one scan, the best face per subject in SQL) or
approximate (the HNSW index's nearest faces, grouped per subject here). Similarity is 1 - cosine
distance. Each runs inside the caller's transaction: its settings are local to it.

Subject search sees the labelled faces (`external_id IS NOT NULL`), photo search the faces of photos
(`photo_id IS NOT NULL`). A photo search wants every face at or above a similarity, grouped by photo:
below `exact_below` faces one scan does it in SQL (the best face per photo, the count and the page);
above, the HNSW index is read in strict distance order (pgvector 0.8's iterative scan, strict_order)
through a server-side cursor, stopping at the first face below the similarity, or after
`PHOTO_SCAN_TUPLES` faces (hnsw.max_scan_tuples: the bound on one search's work), and grouped here.
A new photo's faces (people's incremental path, `photos_many`) are searched in one statement: one
scan scoring every face against all of them, or a LATERAL join reading the index once per face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores.postgres.rows import Target
from adapters.stores.postgres.schema import HNSW_MAX_DIMENSION
from adapters.stores.postgres.vector_codec import PgVector
from domain.gallery import PhotoCursor, PhotoHit, PhotoSearchOutcome, SearchOutcome, SubjectHit

PHOTO_SCAN_TUPLES = 100_000  # the most faces an approximate photo search reads from the index
PHOTO_FIRST_FETCH = 32  # rows of its server-side cursor's first round trip (then 4x each, up to PHOTO_FETCH)
PHOTO_FETCH = 2_048


@dataclass(frozen=True, slots=True)
class Search:
    exact_below: int  # faces in a collection below which a scan answers (exactly)
    ef_search: int  # hnsw.ef_search
    iterative_scan: bool  # pgvector 0.8 and later

    def everyone(
        self, conn: psycopg.Connection[TupleRow], target: Target, probes: npt.NDArray[np.float32], top_k: int
    ) -> SearchOutcome:
        if target.faces < self.exact_below or target.dimension > HNSW_MAX_DIMENSION:
            hits = [_exact(conn, target, probe, top_k, None) for probe in probes]
            return SearchOutcome(hits=hits, method="exact", searched=target.faces)
        # The k-th best subject's best face is among the top_k * (most faces of a subject) nearest.
        wanted = min(target.faces, top_k * max(1, target.most_subject_faces))
        # An iterative scan goes on past ef_search until it has `wanted` rows; without one (pgvector
        # before 0.8) ef_search bounds the rows, so it must cover them (1000 at most).
        ef_search = self.ef_search if self.iterative_scan else min(1000, max(self.ef_search, wanted))
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        # "approximate" means the index: not a scan the planner may prefer on stale statistics.
        conn.execute("SELECT set_config('enable_seqscan', 'off', true)")
        if self.iterative_scan:
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        hits = [_approximate(conn, target, probe, top_k, wanted) for probe in probes]
        return SearchOutcome(hits=hits, method="approximate", searched=target.faces)


def of_subject(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    probes: npt.NDArray[np.float32],
    top_k: int,
    external_id: str,
    subject_faces: int,
) -> SearchOutcome:
    """A search restricted to one subject: always exact, on the unique index."""
    hits = [_exact(conn, target, probe, top_k, external_id) for probe in probes]
    return SearchOutcome(hits=hits, method="exact", searched=subject_faces)


def _exact(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    probe: npt.NDArray[np.float32],
    top_k: int,
    external_id: str | None,
) -> list[SubjectHit]:
    """Every face's distance, the best per subject, the best `top_k` subjects: all in one scan."""
    where, values = (
        (sql.SQL("WHERE external_id IS NOT NULL"), ())
        if external_id is None
        else (sql.SQL("WHERE external_id = %s"), (external_id,))
    )
    rows = conn.execute(
        sql.SQL(
            "SELECT external_id, face_id, distance FROM ("
            " SELECT DISTINCT ON (external_id) external_id, face_id, embedding <=> %s AS distance FROM {} {}"
            " ORDER BY external_id, distance, seq"
            ") best ORDER BY distance, external_id LIMIT %s"
        ).format(target.table, where),
        (PgVector(probe), *values, top_k),
    ).fetchall()
    return [SubjectHit(external_id=row[0], face_id=row[1], similarity=1.0 - float(row[2])) for row in rows]


def _approximate(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    probe: npt.NDArray[np.float32],
    top_k: int,
    wanted: int,
) -> list[SubjectHit]:
    """The `wanted` nearest faces by the HNSW index, then the best face per subject, `top_k` of them."""
    rows = conn.execute(
        sql.SQL(
            "SELECT external_id, face_id, (embedding::vector({})) <=> %s AS distance FROM {}"
            " WHERE external_id IS NOT NULL ORDER BY distance LIMIT %s"
        ).format(sql.Literal(target.dimension), target.table),
        (PgVector(probe), wanted),
    ).fetchall()
    best: dict[str, SubjectHit] = {}
    for external_id, face_id, distance in sorted(rows, key=lambda row: row[2]):
        if external_id not in best:
            best[external_id] = SubjectHit(external_id, face_id, 1.0 - float(distance))
            if len(best) == top_k:
                break
    return list(best.values())


def _photos_scanned_exactly(target: Target, search: Search) -> bool:
    """A photo search scans every face below `exact_below` faces, or where the index cannot serve it."""
    return target.faces < search.exact_below or target.dimension > HNSW_MAX_DIMENSION or not search.iterative_scan


def photos(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    search: Search,
    probe: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
    after: PhotoCursor | None,
) -> PhotoSearchOutcome:
    """The photos whose best face reaches `floor` (`PhotoSearchOutcome`)."""
    if _photos_scanned_exactly(target, search):
        return _photos_exact(conn, target, probe, floor, top_k, after)
    return _photos_approximate(conn, target, search, probe, floor, top_k, after)


def photos_many(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    search: Search,
    probes: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
) -> list[list[PhotoHit]]:
    """`photos`' first page for each probe (a new photo's faces), the same hits, in one statement: one
    scan scoring every face against every probe (below `exact_below` faces, `_photos_exact_many`), or
    one read of the index per probe (`_photos_approximate_many`)."""
    if not len(probes):
        return []
    if _photos_scanned_exactly(target, search):
        return _photos_exact_many(conn, target, probes, floor, top_k)
    return _photos_approximate_many(conn, target, search, probes, floor, top_k)


def _probe_values(probes: npt.NDArray[np.float32], cast: sql.Composable) -> sql.Composable:
    """The probes as the rows (j, probe) of a VALUES list, their vectors as parameters."""
    return sql.SQL(", ").join(sql.SQL("({}, %s::{})").format(sql.Literal(j), cast) for j in range(len(probes)))


def _photos_exact_many(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    probes: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
) -> list[list[PhotoHit]]:
    """`_photos_exact`'s first page for every probe from one scan of the faces (each face read once
    and scored against every probe: at 9k faces, 10 probes took 23 ms where 10 scans took 70)."""
    rows = (
        conn.cursor(binary=True)
        .execute(
            sql.SQL(
                "WITH probes AS MATERIALIZED (SELECT * FROM (VALUES {}) AS v (j, probe)),"
                " best AS (SELECT DISTINCT ON (j, photo_id) * FROM ("
                "  SELECT p.j, f.photo_id, f.face_id, f.external_id, f.x1, f.y1, f.x2, f.y2,"
                "  1 - (f.embedding <=> p.probe) AS similarity"
                "  FROM {} f CROSS JOIN probes p WHERE f.photo_id IS NOT NULL) scored"
                " WHERE similarity >= %s ORDER BY j, photo_id, similarity DESC, face_id)"
                " SELECT * FROM ("
                "  SELECT best.*, row_number() OVER (PARTITION BY j ORDER BY similarity DESC, photo_id) AS place"
                "  FROM best) ranked"
                " WHERE place <= %s ORDER BY j, place"
            ).format(_probe_values(probes, sql.SQL("vector")), target.table),
            (*(PgVector(probe) for probe in probes), floor, top_k),
        )
        .fetchall()
    )
    pages: list[list[PhotoHit]] = [[] for _ in probes]
    for row in rows:
        pages[int(row[0])].append(_photo_hit(row[1:9]))
    return pages


def _photos_exact(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    probe: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
    after: PhotoCursor | None,
) -> PhotoSearchOutcome:
    """One scan: each photo's best face at or above `floor` (materialized once), how many, and the page
    after the cursor. One row even when the page is empty, for the count."""
    rows = conn.execute(
        sql.SQL(
            "WITH best AS MATERIALIZED ("
            " SELECT DISTINCT ON (photo_id) photo_id, face_id, external_id, x1, y1, x2, y2, similarity FROM ("
            "  SELECT photo_id, face_id, external_id, x1, y1, x2, y2, 1 - (embedding <=> %s) AS similarity"
            "  FROM {} WHERE photo_id IS NOT NULL) scored"
            " WHERE similarity >= %s ORDER BY photo_id, similarity DESC, face_id)"
            " SELECT page.*, total.n FROM (SELECT count(*) AS n FROM best) total LEFT JOIN LATERAL ("
            "  SELECT * FROM best WHERE %s OR similarity < %s OR (similarity = %s AND photo_id > %s)"
            "  ORDER BY similarity DESC, photo_id LIMIT %s) page ON true"
            " ORDER BY page.similarity DESC, page.photo_id"
        ).format(target.table),
        (
            PgVector(probe),
            floor,
            after is None,
            0.0 if after is None else after.similarity,
            0.0 if after is None else after.similarity,
            "" if after is None else after.photo_id,
            top_k,
        ),
    ).fetchall()
    hits = [_photo_hit(row[:8]) for row in rows if row[0] is not None]
    return PhotoSearchOutcome(hits, int(rows[0][8]) if rows else 0, "exact", target.faces)


def _photos_approximate(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    search: Search,
    probe: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
    after: PhotoCursor | None,
) -> PhotoSearchOutcome:
    """The index in strict distance order, until a face is below `floor`: each photo's first face is
    its best; then ranked and paged as the exact search."""
    _strict_order_scan(conn, search)
    best: dict[str, tuple[object, ...]] = {}
    with conn.cursor(name="photo_search", binary=True) as cursor:
        cursor.execute(
            sql.SQL(
                "SELECT photo_id, face_id, external_id, x1, y1, x2, y2, (embedding::vector({})) <=> %s AS distance"
                " FROM {} WHERE photo_id IS NOT NULL ORDER BY distance"
            ).format(sql.Literal(target.dimension), target.table),
            (PgVector(probe),),
        )
        # Fetched in growing batches: most probes stop within the first few faces, and each row the
        # server hands over is one more step of the index scan.
        size, below = PHOTO_FIRST_FETCH, False
        while not below and (rows := cursor.fetchmany(size)):
            for row in rows:
                similarity = 1.0 - float(row[7])
                if similarity < floor:
                    below = True
                    break
                best.setdefault(row[0], (*row[:7], similarity))
            size = min(PHOTO_FETCH, size * 4)
    ranked = sorted(best.values(), key=lambda row: (-float(row[7]), str(row[0])))  # type: ignore[arg-type]
    page = [row for row in ranked if after is None or not after.before(float(row[7]), str(row[0]))]  # type: ignore[arg-type]
    return PhotoSearchOutcome([_photo_hit(row) for row in page[:top_k]], len(best), "approximate", target.faces)


def _strict_order_scan(conn: psycopg.Connection[TupleRow], search: Search) -> None:
    """The settings of a photo search through the index, for this transaction."""
    for name, value in (
        ("hnsw.ef_search", str(search.ef_search)),
        ("hnsw.iterative_scan", "strict_order"),
        ("hnsw.max_scan_tuples", str(PHOTO_SCAN_TUPLES)),
        ("enable_seqscan", "off"),
    ):
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _photos_approximate_many(
    conn: psycopg.Connection[TupleRow],
    target: Target,
    search: Search,
    probes: npt.NDArray[np.float32],
    floor: float,
    top_k: int,
) -> list[list[PhotoHit]]:
    """One statement: for each probe, the index's first `limit` faces in strict distance order (a
    LATERAL join over the probes, each one the same index scan `_photos_approximate` reads through its
    cursor). A probe's page is known from them when they reach a face below `floor` or the scan's end,
    or when `top_k` photos score above the last face read (no later face can pass them); otherwise
    (a crowd of faces near the probe) that probe is searched again by `_photos_approximate`."""
    _strict_order_scan(conn, search)
    limit = max(PHOTO_FIRST_FETCH, 4 * top_k)
    probes_sql = _probe_values(probes, sql.SQL("vector({})").format(sql.Literal(target.dimension)))
    rows = (
        conn.cursor(binary=True)
        .execute(
            sql.SQL(
                "SELECT p.j, h.photo_id, h.face_id, h.external_id, h.x1, h.y1, h.x2, h.y2, h.distance"
                " FROM (VALUES {}) AS p (j, probe) CROSS JOIN LATERAL ("
                "  SELECT s.*, row_number() OVER () AS place FROM ("
                "   SELECT photo_id, face_id, external_id, x1, y1, x2, y2,"
                "   (embedding::vector({})) <=> p.probe AS distance"
                "   FROM {} WHERE photo_id IS NOT NULL ORDER BY distance LIMIT %s) s) h"
                " ORDER BY p.j, h.place"
            ).format(probes_sql, sql.Literal(target.dimension), target.table),
            (*(PgVector(probe) for probe in probes), limit),
        )
        .fetchall()
    )
    read: list[list[tuple[Any, ...]]] = [[] for _ in probes]
    for row in rows:
        read[int(row[0])].append(row[1:])
    pages: list[list[PhotoHit]] = []
    for probe, faces in zip(probes, read, strict=True):
        best: dict[str, tuple[object, ...]] = {}
        below = False
        for row in faces:
            similarity = 1.0 - float(row[7])
            if similarity < floor:
                below = True
                break
            best.setdefault(row[0], (*row[:7], similarity))
        ranked = sorted(best.values(), key=lambda row: (-float(row[7]), str(row[0])))  # type: ignore[arg-type]
        last = 1.0 - float(faces[-1][7]) if faces else floor
        settled = below or len(faces) < limit or sum(float(row[7]) > last for row in ranked) >= top_k  # type: ignore[arg-type]
        if settled:
            pages.append([_photo_hit(row) for row in ranked[:top_k]])
        else:
            pages.append(_photos_approximate(conn, target, search, probe, floor, top_k, None).hits)
    return pages


def _photo_hit(row: Sequence[Any]) -> PhotoHit:
    photo_id, face_id, external_id, x1, y1, x2, y2, similarity = row
    bbox = None if x1 is None else (float(x1), float(y1), float(x2), float(y2))
    return PhotoHit(photo_id, face_id, float(similarity), external_id, bbox)
