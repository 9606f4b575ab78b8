"""Connections to the store: SQLite (WAL, one writer at a time) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import EngineError


class StoreError(EngineError):
    """The store cannot do what was asked: unreachable, wrong schema, a conflict."""


def normalize_url(url: str) -> str:
    """postgres:// and postgresql:// use psycopg 3, the driver Klaxon ships with."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def json_loads(text: str | bytes) -> Any:
    """JSON columns read with orjson (the standard library's decoder was 7% of a worker's
    batch); text orjson refuses, such as the NaN the standard encoder writes, as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An SQLAlchemy engine set up for Klaxon's access pattern.

    SQLite: WAL (readers never wait for the writer), a busy timeout, and `BEGIN IMMEDIATE` so a
    read-then-write transaction takes the write lock up front instead of failing half way
    (STACK.md). PostgreSQL: a small pool with pre-ping.
    """
    url = normalize_url(url)
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_deserializer=json_loads,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True, json_deserializer=json_loads
    )


def orm(conn: Connection) -> Session:
    """An ORM session inside the caller's connection and transaction (for model objects)."""
    return Session(bind=conn, expire_on_commit=False, autoflush=False)


class Database:
    """The store: an engine and sessions. One per process."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        # Reads on SQLite go through a second engine without BEGIN IMMEDIATE: in WAL mode they
        # never wait for the writer, and they must not hold its lock.
        self.reader = (
            create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                json_deserializer=json_loads,
            )
            if is_sqlite(self.url)
            else self.engine
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in one write transaction."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading; it never blocks the writer."""
        with self.reader.connect() as conn:
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()
