"""A start's load of one SQLite collection into its matrices, in bulk.

A million faces make a million rows; read one by one, each is a tuple, a bytes object of 2 KiB, a
str of its face id and an int or two, and their making cost more than SQLite's reading of the rows
(profile at 1M faces, the row-by-row load: fetching rows 2.3 to 2.8 s, copying and checking them 2 s
and more). So each query here answers a whole chunk of rows as one row of aggregates: the vectors as
one BLOB (`group_concat` of the embeddings with no separator), the face ids as one string of 32 hex
characters each, subject and photo row ids as 16 hex digits each (`printf`), and the checks a row
must pass as counts. The vectors go from that BLOB into the matrix in one copy; ids are decoded for
the whole chunk at once (numpy); subjects and photos are read once per collection and looked up by
row id (`np.searchsorted`). All the aggregates of one query see the same rows in the same order,
which is all that matters here: a matrix's rows have no order (a delete moves the last row into
the hole).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from adapters.stores.matrix import FACE_ID_BYTES, FaceMatrix
from adapters.stores.sqlite_collection import SqliteCollection
from adapters.stores.sqlite_sql import LOAD_CHUNK, LOAD_CHUNK_END, LOAD_PHOTOS, LOAD_SUBJECTS, LOAD_TAIL_COUNT
from domain.errors import CollectionUnavailable
from domain.gallery import collection_problem, is_photo_id

LOAD_ROWS = 2048  # rows per query: a chunk's vectors (4 MiB at 512-D) stay in cache while checked
ROW_ID_DIGITS = 16  # a row id as `printf('%016x')` spells it (row ids are 64-bit)
_HEX_DIGITS = np.full(256, 255, dtype=np.uint8)
_HEX_DIGITS[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


@dataclass(frozen=True)
class _Chunk:
    vectors: npt.NDArray[np.float32]  # (rows, dimension)
    face_ids: npt.NDArray[np.bytes_]  # packed, as the matrix keeps them
    subject_rows: npt.NDArray[np.int64]  # 0: no subject
    photo_rows: npt.NDArray[np.int64]  # 0: no photo


@dataclass(frozen=True)
class _Slots:
    """A collection's subjects or photos: their row ids, sorted, and each one's slot in its matrix."""

    rows: npt.NDArray[np.int64]
    slots: npt.NDArray[np.int32]

    def slots_of(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        at = np.minimum(np.searchsorted(self.rows, rows), max(len(self.rows) - 1, 0))
        if not len(self.rows) or (self.rows[at] != rows).any():
            raise CollectionUnavailable("it holds a face whose subject or photo does not exist")
        return self.slots[at]


def load_collection(
    db: sqlite3.Connection, cid: int, name: str, model_id: str, dimension: int, threshold: float, created: datetime
) -> SqliteCollection:
    """The collection's matrices, from its rows; CollectionUnavailable when a value in them is one no
    write could have stored (the collection is then quarantined, never served half)."""
    problem = collection_problem(name, model_id, dimension, threshold)
    if problem is not None:
        raise CollectionUnavailable(problem)
    subject_rows, subject_names = _names(db, cid, LOAD_SUBJECTS)
    photo_rows, photo_names = _names(db, cid, LOAD_PHOTOS)
    if not all(map(is_photo_id, photo_names)):
        raise CollectionUnavailable("it holds a photo id no write could have stored")
    ends = _chunk_ends(db, cid)
    after = ends[-1] if ends else -(2**63)
    count = len(ends) * LOAD_ROWS + db.execute(LOAD_TAIL_COUNT, (cid, after)).fetchone()[0]
    # Headroom: rows never written cost no memory (the pages stay untouched), and the first
    # enrolments after a start do not copy the whole matrix to grow it.
    capacity = count + count // 4 + 16
    matrix = FaceMatrix(dimension, capacity=capacity, filled=0 if photo_names else count)
    by_photo = FaceMatrix(dimension, capacity=capacity if photo_names else 0)
    subjects = _Slots(subject_rows, matrix.add_subjects(subject_names))
    photos = _Slots(photo_rows, by_photo.add_subjects(photo_names))
    unlabelled = 0
    for chunk in _chunks(db, cid, dimension, ends):
        labelled = chunk.subject_rows != 0
        everyone = bool(labelled.all())
        if everyone:  # the usual collection: no row to pick out
            matrix.append_rows(chunk.face_ids, subjects.slots_of(chunk.subject_rows), chunk.vectors)
        elif labelled.any():
            rows = chunk.subject_rows[labelled]
            matrix.append_rows(chunk.face_ids[labelled], subjects.slots_of(rows), chunk.vectors[labelled])
        unlabelled += int(np.count_nonzero(~labelled))
        pictured = chunk.photo_rows != 0
        if pictured.any():
            rows = chunk.photo_rows[pictured]
            by_photo.append_rows(chunk.face_ids[pictured], photos.slots_of(rows), chunk.vectors[pictured])
        if not (everyone or pictured[~labelled].all()):
            raise CollectionUnavailable("it holds a face of no subject and no photo")
    matrix.forget_faceless()  # a subject row whose faces all went to photos (none, normally)
    by_photo.forget_faceless()  # a photo is stored even with no face: photo search has nothing of it
    return SqliteCollection(
        name, model_id, dimension, threshold, created, matrix, cid, by_photo, unlabelled, len(photo_rows)
    )


def _names(db: sqlite3.Connection, cid: int, query: str) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Subjects' or photos' row ids, sorted, and their names."""
    ids, names, count = db.execute(query, (cid,)).fetchone()
    if not count:
        return np.zeros(0, dtype=np.int64), []
    rows = np.array(ids.split(" "), dtype=np.int64)
    split = names.split(" ")
    if len(split) != count or len(rows) != count:
        raise CollectionUnavailable("it holds a subject or photo id no write could have stored")
    order = np.argsort(rows, kind="stable")
    return rows[order], [split[i] for i in order.tolist()]


def _chunk_ends(db: sqlite3.Connection, cid: int) -> list[int]:
    """The seq that ends each full chunk of LOAD_ROWS faces; the rows after the last form the last chunk."""
    ends: list[int] = []
    while row := db.execute(LOAD_CHUNK_END, (cid, ends[-1] if ends else -(2**63), LOAD_ROWS - 1)).fetchone():
        ends.append(int(row[0]))
    return ends


def _chunks(db: sqlite3.Connection, cid: int, dimension: int, ends: list[int]) -> Iterator[_Chunk]:
    bounds = zip([-(2**63), *ends], [*ends, 2**63 - 1], strict=True)
    for after, last in bounds:
        values = {"collection": cid, "after": after, "last": last, "bytes": dimension * 4}
        rows, blob, face_ids, subject_rows, photo_rows, bad_vectors, bad_ids, unreadable = db.execute(
            LOAD_CHUNK, values
        ).fetchone()
        if not rows:
            continue
        if bad_vectors:
            raise CollectionUnavailable("it holds a vector of the wrong size")
        if unreadable:
            raise CollectionUnavailable("it holds a face whose landmarks or quality cannot be read")
        vectors = np.frombuffer(blob, dtype=np.float32).reshape(rows, dimension)
        if not np.isfinite(vectors).all():  # checked while the chunk is still in cache
            raise CollectionUnavailable("it holds a vector with a non-finite value")
        if bad_ids:
            raise CollectionUnavailable("it holds a face id no write could have stored")
        packed = _hex_rows(face_ids, rows, 2 * FACE_ID_BYTES).view(f"S{FACE_ID_BYTES}").reshape(rows)
        subjects = _hex_rows(subject_rows, rows, ROW_ID_DIGITS).view(">i8").reshape(rows).astype(np.int64)
        photos = _hex_rows(photo_rows, rows, ROW_ID_DIGITS).view(">i8").reshape(rows).astype(np.int64)
        yield _Chunk(vectors, packed, subjects, photos)


def _hex_rows(text: str, rows: int, digits: int) -> npt.NDArray[np.uint8]:
    """`rows` values of `digits` lowercase hex digits each, end to end: the bytes they spell, a row each."""
    try:
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raw = np.zeros(0, dtype=np.uint8)
    if len(raw) != rows * digits:
        raise CollectionUnavailable("it holds an id no write could have stored")
    values = _HEX_DIGITS[raw.reshape(rows, digits)]
    if (values == 255).any():
        raise CollectionUnavailable("it holds an id no write could have stored")
    return np.ascontiguousarray((values[:, 0::2] << 4) | values[:, 1::2])
