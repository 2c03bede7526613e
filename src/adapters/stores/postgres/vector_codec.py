"""pgvector's `vector` for psycopg: uint16 dimension, uint16 zero, then big-endian float32s.

Thirty lines of our own instead of the `pgvector` package, which goes through `array('f')` and looks up
four types on every new connection.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format


class PgVector:
    """A float32 vector to send as a `vector` parameter (`register` gives it its dumper)."""

    __slots__ = ("values",)

    def __init__(self, values: npt.NDArray[np.float32]) -> None:
        self.values = values


class _VectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: PgVector) -> Buffer:
        values = np.asarray(obj.values, dtype=">f4").reshape(-1)
        return struct.pack(">HH", values.shape[0], 0) + values.tobytes()


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> npt.NDArray[np.float32]:
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


class _VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> npt.NDArray[np.float32]:
        text = bytes(data).decode()
        return np.array(text[1:-1].split(","), dtype=np.float32)


def register(conn: psycopg.Connection[Any], vector_oid: int) -> None:
    """Send PgVector and read `vector` columns (binary or text) as float32 arrays on `conn`. The type's
    oid is the database's (the extension's), so it is looked up once, at migration."""
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": vector_oid})
    conn.adapters.register_dumper(PgVector, dumper)
    conn.adapters.register_loader(vector_oid, _VectorBinaryLoader)
    conn.adapters.register_loader(vector_oid, _VectorTextLoader)
