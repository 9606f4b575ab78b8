"""A throwaway Klaxon for the benchmarks: a fresh store, `klaxon api` and `klaxon worker` as real
processes, an ingest key; shared by bench/ingest and bench/notify."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from engine.up import wait_ready

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("KLAXON_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def klaxon(env: dict[str, str], *args: str) -> str:
    """Run one `klaxon` command to completion; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@contextmanager
def fresh_store(store: str, prefix: str) -> Iterator[tuple[Path, str]]:
    """A temporary folder and a database URL: SQLite in the folder, or a new PostgreSQL
    database dropped afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    admin, name = None, None
    if store == "sqlite":
        db_url = f"sqlite:///{tmp / 'klaxon.db'}"
    else:
        name = f"klaxon_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        db_url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield tmp, db_url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


@contextmanager
def api_and_worker(env: dict[str, str], log: Path) -> Iterator[tuple[str, str]]:
    """Migrate the store, make an ingest+read key, start api and worker; (API URL, key)."""
    klaxon(env, "db", "upgrade")
    key = klaxon(env, "apikey", "create", "--name", "bench", "--scopes", "ingest,read")
    key = key.strip().splitlines()[-1]
    port = free_port()
    run = [sys.executable, "-m", "engine"]
    with open(log, "ab") as logs:
        procs = [
            subprocess.Popen(
                [*run, "api", "--port", str(port)], env=env, cwd=ROOT, stdout=logs, stderr=logs
            ),
            subprocess.Popen([*run, "worker"], env=env, cwd=ROOT, stdout=logs, stderr=logs),
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            if not wait_ready(url, timeout=30):
                raise RuntimeError(f"the API did not become ready; see {log}")
            yield url, key
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)
