"""Searching a collection's partition: exact (one scan, the best face per subject in SQL) or
approximate (the HNSW index's nearest faces, grouped per subject here). Similarity is 1 - cosine
distance. Each runs inside the caller's transaction: its settings are local to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores.postgres.rows import Target
from adapters.stores.postgres.schema import HNSW_MAX_DIMENSION
from adapters.stores.postgres.vector_codec import PgVector
from domain.gallery import SearchOutcome, SubjectHit


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
    where, values = (sql.SQL(""), ()) if external_id is None else (sql.SQL("WHERE external_id = %s"), (external_id,))
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
            "SELECT external_id, face_id, (embedding::vector({})) <=> %s AS distance FROM {} ORDER BY distance LIMIT %s"
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
