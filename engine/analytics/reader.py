"""Reading store rows into Polars fast: COPY on PostgreSQL, plain cursor rows on SQLite.

SQLAlchemy's per-value type processing (aware datetimes, JSON) costs more than the query, so
rows are read raw and typed by the table spec in one vectorized pass. Reads go through
`Database.read()`: on SQLite they never hold the write lock, so ingestion never waits.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import polars as pl
from sqlalchemy import Connection

from engine.analytics.tables import TableSpec

FETCH_ROWS = 100_000


def read_where(conn: Connection, spec: TableSpec, where: str) -> pl.DataFrame:
    """Every row of `spec` matching `where` (SQL built by the snapshot from numbers it owns)."""
    frames = list(iter_where(conn, spec, where))
    if not frames:
        return spec.empty()
    return pl.concat(frames, how="vertical")


def iter_where(conn: Connection, spec: TableSpec, where: str) -> Iterator[pl.DataFrame]:
    dialect = conn.dialect.name
    sql = f"SELECT {spec.select_list(dialect)} FROM {spec.name} WHERE {where} ORDER BY id"
    if dialect == "postgresql":
        yield from _copy(conn, spec, sql)
    else:
        yield from _rows(conn, spec, sql)


def _rows(conn: Connection, spec: TableSpec, sql: str) -> Iterator[pl.DataFrame]:
    result = conn.exec_driver_sql(sql)
    schema = spec.raw_schema
    while True:
        rows = result.fetchmany(FETCH_ROWS)
        if not rows:
            return
        raw = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row", strict=False)
        yield spec.convert(raw)


def _copy(conn: Connection, spec: TableSpec, sql: str) -> Iterator[pl.DataFrame]:
    raw_conn = conn.connection.driver_connection
    assert raw_conn is not None
    buffer = io.BytesIO()
    # NULL as \N, so that NULL and the empty string stay apart.
    with (
        raw_conn.cursor() as cur,
        cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, NULL '\\N')") as copy,
    ):
        for chunk in copy:
            buffer.write(chunk)
    if buffer.tell() == 0:
        return
    buffer.seek(0)
    schema = spec.raw_schema
    raw = pl.read_csv(
        buffer,
        has_header=False,
        schema=schema,
        null_values="\\N",
        empty_string_is_null=False,
    )
    yield spec.convert(raw)


def scalar(conn: Connection, sql: str) -> int | None:
    value = conn.exec_driver_sql(sql).scalar()
    return None if value is None else int(value)
