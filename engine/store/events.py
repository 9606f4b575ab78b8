"""Writing accepted events: durable in `events`, queued in `inbox`, each event once."""

from __future__ import annotations

import uuid
from typing import Any

import polars as pl
from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.schema import EVENT_SCHEMA
from engine.schema import events_frame as schema_events_frame
from engine.store.models import Event, InboxItem

_COLUMNS = [c for c in EVENT_SCHEMA if c != "event_id"]


def new_event_id() -> str:
    return f"klx:{uuid.uuid4().hex}"


def with_event_ids(events: pl.DataFrame) -> pl.DataFrame:
    """Events without an id get a random one: they cannot be deduplicated on redelivery."""
    missing = events["event_id"].is_null() | (events["event_id"] == "")
    if not missing.any():
        return events
    fresh = pl.Series(
        [f"klx:{uuid.uuid4().hex}" for _ in range(int(missing.sum()))], dtype=pl.String
    )
    ids = events["event_id"].to_list()
    it = iter(fresh.to_list())
    return events.with_columns(
        event_id=pl.Series(
            [next(it) if m else i for i, m in zip(ids, missing.to_list(), strict=True)]
        )
    )


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(Event).on_conflict_do_nothing()
    return sqlite.insert(Event).on_conflict_do_nothing()


def insert_events(
    conn: Connection, events: pl.DataFrame | list[dict[str, Any]], *, return_ids: bool = False
) -> list[Any]:
    """Store events whose event_id is new and queue them for the worker.

    `events` is an EVENT_SCHEMA frame or store-ready records (every event_id set). Returns the
    primary keys of the events stored now (their event_ids with `return_ids`); an event
    already stored (a retried delivery) is skipped and not queued twice.
    """
    if isinstance(events, pl.DataFrame):
        rows = with_event_ids(events).to_dicts()
        for row in rows:
            row["labels"] = row["labels"] or {}
    else:
        rows = events
    if not rows:
        return []
    result = conn.execute(_insert(conn).returning(Event.id, Event.event_id), rows).all()
    pks = [r[0] for r in result]
    if pks:
        conn.execute(insert(InboxItem), [{"event_pk": pk} for pk in pks])
    return [r[1] for r in result] if return_ids else pks


def queue_depth(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(InboxItem)).scalar_one())


def events_frame(rows: list[Any]) -> pl.DataFrame:
    """Event rows (tuples in EVENT_SCHEMA column order) from the store → an EVENT_SCHEMA frame."""
    names = list(EVENT_SCHEMA)
    return schema_events_frame([dict(zip(names, r, strict=True)) for r in rows])


def purge_processed(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(InboxItem).where(InboxItem.id.in_(ids)))
