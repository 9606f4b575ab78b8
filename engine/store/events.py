"""Writing accepted events: durable in `events`, queued in `inbox`, each event once."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
from sqlalchemy import BigInteger, Connection, String, Text, cast, delete, func, select
from sqlalchemy import type_coerce as coerce
from sqlalchemy.sql.elements import ColumnElement

from engine.schema import EVENT_SCHEMA, FED_SCHEMA, LABELS, UTC_US, fill_fingerprints
from engine.store.models import Event, InboxItem


def new_event_ids(n: int) -> list[str]:
    """`n` random event ids from one read of the OS's randomness (uuid4 per id makes a
    system call each: 7% of the API's time on 100-event requests)."""
    raw = os.urandom(16 * n).hex()
    return [f"klx:{raw[32 * i : 32 * i + 32]}" for i in range(n)]


def insert_events(
    conn: Connection, events: pl.DataFrame | list[dict[str, Any]], *, return_ids: bool = False
) -> list[Any]:
    """Store events whose event_id is new and queue them for the worker.

    `events` is an EVENT_SCHEMA frame or store-ready records; an event without an event_id
    gets a random one (it cannot be deduplicated on redelivery). Returns the primary keys of
    the events stored now (their event_ids with `return_ids`); an event already stored (a
    retried delivery) is skipped and not queued twice.
    """
    rows = events.to_dicts() if isinstance(events, pl.DataFrame) else events
    missing = [row for row in rows if not row.get("event_id")]
    for row, event_id in zip(missing, new_event_ids(len(missing)), strict=True):
        row["event_id"] = event_id  # never let two id-less events collide on ""
    if not rows:
        return []
    now = datetime.now(UTC)
    if conn.dialect.name == "postgresql":
        result = _insert_pg(conn, rows, now)
    else:
        result = _insert_sqlite(conn, rows, now)
    return [r[1] for r in result] if return_ids else [r[0] for r in result]


_STORED = [c for c in EVENT_SCHEMA if c != "raw"] + ["raw"]
_CHUNK = 1000  # rows per INSERT: 17 columns stay far below SQLite's 32766 parameters


def _insert_sqlite(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> list[Any]:
    """One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk, with values
    prepared here for the driver (SQLAlchemy's per-value bind processing cost 3x the insert;
    the values are exactly what the ORM types would store: UTCDateTime, Json), then the new
    events' inbox rows in one executemany."""
    cells = ", ".join("?" for _ in _STORED)
    out: list[Any] = []
    last_time: datetime | None = None
    last_text = ""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        params: list[Any] = []
        for row in chunk:
            for c in _STORED:
                v: Any = row.get(c)
                if c in _TIMES:
                    # A request's events share one received_at: formatted once.
                    if v is not last_time:
                        last_time, last_text = v, _sqlite_time(v)
                    v = last_text
                elif c == "labels":
                    v = orjson.dumps(v or {}).decode()
                params.append(v)
        values = ", ".join([f"({cells})"] * len(chunk))
        sql = (
            f"INSERT INTO events ({', '.join(_STORED)}) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING id, event_id"
        )
        out.extend(conn.exec_driver_sql(sql, tuple(params)).all())
    # RETURNING's row order is not promised; ids grow in the order rows went in.
    out.sort(key=lambda r: r[0])
    if out:
        queued = _sqlite_time(now)
        conn.exec_driver_sql(
            "INSERT INTO inbox (event_pk, enqueued_at) VALUES (?, ?)",
            [(r[0], queued) for r in out],
        )
    return out


_PG_TYPES = {
    **dict.fromkeys(_STORED, "text"),
    **dict.fromkeys(("ts", "received_at"), "timestamptz"),
    "value": "float8",
    "labels": "jsonb",
}

# One statement stores the events and queues the new ones, from one JSON parameter that orjson
# writes and PostgreSQL's json_to_recordset reads, both in C. Array parameters (one per column)
# cost a third of the API's CPU: psycopg quotes every element of a text array in Python.
_PG_INSERT = (
    "WITH new AS ("
    f" INSERT INTO events ({', '.join(_STORED)})"
    f" SELECT {', '.join(_STORED)}"
    " FROM json_to_recordset(%s::json)"
    f" AS t({', '.join(f'{c} {_PG_TYPES[c]}' for c in _STORED)})"
    " ON CONFLICT DO NOTHING RETURNING id, event_id"
    "), queued AS ("
    " INSERT INTO inbox (event_pk, enqueued_at) SELECT id, %s FROM new ORDER BY id"
    ") SELECT id, event_id FROM new ORDER BY id"
)

# JSON has no infinity or NaN (orjson writes null): such a value goes as the text float8 reads.
_NOT_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _insert_pg(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> list[Any]:
    sent = [
        row
        if (v := row.get("value")) is None or math.isfinite(v)
        else {**row, "value": _NOT_FINITE.get(v, "NaN")}
        for row in rows
    ]
    payload = orjson.dumps(sent, option=orjson.OPT_NAIVE_UTC).decode()
    return list(conn.exec_driver_sql(_PG_INSERT, (payload, now)).all())


def _sqlite_time(value: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DateTime stores it: naive UTC text, microseconds
    (the first 26 characters of the UTC time's ISO form, without its offset)."""
    if value.tzinfo is not UTC:
        value = _utc(value)
    return value.isoformat(" ", "microseconds")[:26]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def queue_depth(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(InboxItem)).scalar_one())


_TIMES = ("ts", "received_at")
_ENUMS = {n: t for n, t in EVENT_SCHEMA.items() if isinstance(t, pl.Enum)}


def stored_columns(dialect: str) -> list[ColumnElement[Any]]:
    """The FED_SCHEMA columns of `events` as the driver returns them, skipping SQLAlchemy's
    per-row conversion (the slow part of reading a batch): times as text on SQLite or epoch
    microseconds on PostgreSQL, labels as JSON text. `_typed` turns them into a frame."""
    out: list[ColumnElement[Any]] = []
    for name in FED_SCHEMA:
        col = getattr(Event, name)
        expr: ColumnElement[Any]
        if name in _TIMES:
            expr = (
                cast(func.extract("epoch", col) * 1_000_000, BigInteger)
                if dialect == "postgresql"
                else coerce(col, String)
            )
        elif name == "labels":
            expr = cast(col, Text()) if dialect == "postgresql" else coerce(col, String)
        else:
            expr = col
        out.append(expr.label(name))
    return out


_PAIRS = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))


def _labels(texts: list[str | None]) -> pl.Series:
    """JSON label objects → a LABELS column in key order: flat key/value columns zipped per row
    by Polars (building nested Python lists per row costs several times more)."""
    decoded = [orjson.loads(text) if text else {} for text in texts]
    flat = pl.DataFrame(
        {
            "row": [i for i, d in enumerate(decoded) for _ in d],
            "key": [k for d in decoded for k in d],
            "value": [str(v) for d in decoded for v in d.values()],
        },
        schema={"row": pl.UInt32, "key": pl.String, "value": pl.String},
    )
    # Sorted by key: SQLite's JSON keeps insertion order, PostgreSQL's jsonb its own, and the
    # engine must see the same labels whichever store it reads.
    pairs = flat.sort("row", "key").group_by("row").agg(pl.struct("key", "value").alias("labels"))
    every = pl.DataFrame({"row": pl.int_range(len(texts), eager=True, dtype=pl.UInt32)})
    joined = every.join(pairs, on="row", how="left", maintain_order="left")["labels"]
    return joined.fill_null(pl.lit([], dtype=_PAIRS)).cast(LABELS)


def _stored_types(dialect: str) -> dict[str, pl.DataType]:
    """FED_SCHEMA as read: labels as JSON text and enums as text; times as epoch microseconds
    on PostgreSQL, and as text on SQLite, where `value` too is text (see `_sqlite_object`)."""
    if dialect == "postgresql":
        read_as = {
            **dict.fromkeys(_TIMES, pl.Int64()),
            **dict.fromkeys((*_ENUMS, "labels"), pl.String()),
        }
    else:
        read_as = dict.fromkeys((*_TIMES, *_ENUMS, "labels", "value"), pl.String())
    return {n: read_as.get(n, t) for n, t in FED_SCHEMA.items()}


def _typed(stored: pl.DataFrame, dialect: str) -> pl.DataFrame:
    """Columns as `_stored_types` reads them → a FED_SCHEMA frame."""

    def time(name: str) -> pl.Expr:
        if dialect == "postgresql":
            return pl.col(name).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return pl.col(name).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", time_zone="UTC")

    df = stored.with_columns(
        *(time(n) for n in _TIMES),
        _labels(stored["labels"].to_list()),
        pl.col("value").cast(pl.Float64),
        *(pl.col(n).cast(t) for n, t in _ENUMS.items()),
    )
    return fill_fingerprints(
        df.select(list(FED_SCHEMA)).cast({"ts": UTC_US, "received_at": UTC_US})
    )


def _sqlite_object(*first: str) -> str:
    """SQL for one JSON object per `events AS e` row: the `first` members, then the FED_SCHEMA
    columns. SQLite writes the text in C and Polars parses it: fetching rows instead made a
    Python object of every value, the slowest part of reading a batch. `value` is written as
    text with 17 significant digits (exact), since JSON has no infinity (SQLite writes Inf)."""
    members = list(first)
    for name in FED_SCHEMA:
        column = f'e."{name}"'
        if name == "value":
            column = f"iif({column} IS NULL, NULL, printf('%!.17g', {column}))"
        members.append(f"'{name}', {column}")
    return f"json_object({', '.join(members)})"


def _sqlite_rows(text: str | None, first: dict[str, pl.DataType]) -> pl.DataFrame:
    """Newline-separated `_sqlite_object` text → a frame of `first` and the stored columns."""
    schema = {**first, **_stored_types("sqlite")}
    if text is None:
        return pl.DataFrame(schema=schema)
    return pl.read_ndjson(io.BytesIO(text.encode()), schema=schema)


def _driver_rows(rows: Sequence[Any], first: dict[str, pl.DataType], dialect: str) -> pl.DataFrame:
    """Rows of `first` and the `stored_columns` → a frame of them, converted column-wise."""
    schema = {**first, **_stored_types(dialect)}
    if not rows:
        return pl.DataFrame(schema=schema)
    columns = zip(schema, (list(c) for c in zip(*rows, strict=True)), strict=True)
    return pl.DataFrame(dict(columns), schema=schema)


_PKS: dict[str, pl.DataType] = {"pk": pl.Int64()}


def inbox_batch(conn: Connection, limit: int) -> tuple[pl.DataFrame, list[int], list[int]] | None:
    """The oldest `limit` queued events, oldest first: a FED_SCHEMA frame, their inbox ids and
    their primary keys; None when nothing is queued."""
    first = {"inbox_id": pl.Int64(), **_PKS}
    dialect = conn.dialect.name
    if dialect == "sqlite":
        obj = _sqlite_object("'inbox_id', i.id", "'pk', e.id")
        text = conn.exec_driver_sql(
            "SELECT group_concat(obj, char(10)) FROM ("
            f"SELECT {obj} AS obj"
            " FROM (SELECT id, event_pk FROM inbox ORDER BY id LIMIT ?) AS i"
            " JOIN events AS e ON e.id = i.event_pk)",
            (limit,),
        ).scalar_one()
        stored = _sqlite_rows(text, first)
    else:
        rows = conn.execute(
            select(InboxItem.id, InboxItem.event_pk, *stored_columns(dialect))
            .join(Event, Event.id == InboxItem.event_pk)
            .order_by(InboxItem.id)
            .limit(limit)
        ).all()
        stored = _driver_rows(rows, first, dialect)
    if stored.height == 0:
        return None
    stored = stored.sort("inbox_id")  # SQLite's group_concat promises no order
    frame = _typed(stored.drop("inbox_id", "pk"), dialect)
    return frame, stored["inbox_id"].to_list(), stored["pk"].to_list()


def events_by_pk(conn: Connection, pks: list[int]) -> pl.DataFrame:
    """The stored events with these primary keys, as a FED_SCHEMA frame in the order given
    (the worker's journal replay reads a batch back exactly as it was fed)."""
    if not pks:
        return pl.DataFrame(schema=FED_SCHEMA)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        obj = _sqlite_object("'pk', e.id")
        text = conn.exec_driver_sql(
            f"SELECT group_concat({obj}, char(10)) FROM events AS e"
            f" WHERE e.id IN ({', '.join('?' for _ in pks)})",
            tuple(pks),
        ).scalar_one()
        found = _sqlite_rows(text, _PKS)
    else:
        rows = conn.execute(
            select(Event.id, *stored_columns(dialect)).where(Event.id.in_(pks))
        ).all()
        found = _driver_rows(rows, _PKS, dialect)
    wanted = pl.DataFrame({"pk": pks}, schema=_PKS)
    stored = wanted.join(found, on="pk", how="left", maintain_order="left")
    missing = stored.filter(pl.col("event_id").is_null())["pk"].to_list()
    if missing:
        raise LookupError(f"{len(missing)} journaled events are gone from the store: {missing[:5]}")
    return _typed(stored.drop("pk"), dialect)


def purge_processed(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(InboxItem).where(InboxItem.id.in_(ids)))
