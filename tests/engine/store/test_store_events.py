"""Events come back out of the store exactly as they went in, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from sqlalchemy import select

from engine.queue.sql_inbox import SqlInbox
from engine.schema import FED_SCHEMA, events_frame, records_from_dicts
from engine.store.events import events_by_pk, insert_events
from engine.store.models import Event


def _items() -> list[dict[str, object]]:
    t0 = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
    return [
        {
            "ts": t0 + timedelta(microseconds=i),
            "source": "prometheus",
            "kind": "alert" if i % 2 else "event",
            "status": "firing",
            "severity": ["info", "low", "medium", "high", "critical"][i % 5],
            "title": f"Alert {i} ünïcode \"quoted\" 'single'",
            "service": f"svc{i % 3}",
            "source_id": f"id{i}",
            "value": None if i % 4 == 0 else i * 0.5,
            # no labels, one label, keys needing JSON escapes, an empty value
            "labels": [{}, {"a": "1"}, {'k"ey': "v\\al\nue", "ü": ""}, {"z": "2", "a": "1"}][i % 4],
        }
        for i in range(40)
    ]


def test_a_claimed_batch_equals_the_events_stored(db) -> None:
    items = _items()
    for i, item in enumerate(items):
        item["raw"] = f'{{"payload": {i}}}'
    records = records_from_dicts(items)
    with db.connect() as conn:
        insert_events(conn, records)
    batch = SqlInbox(db).claim(1000)
    assert batch is not None
    got = batch.events
    # labels come back in key order, whichever order the store keeps them in; the raw payload
    # stays in the store (the engine never reads it)
    want = events_frame([{**r, "labels": dict(sorted(r["labels"].items()))} for r in records]).drop(
        "raw"
    )
    assert got.schema == FED_SCHEMA
    with db.read() as conn:
        stored_raw = conn.execute(select(Event.raw).order_by(Event.id)).scalars().all()
    assert stored_raw == [f'{{"payload": {i}}}' for i in range(len(items))]
    # received_at is set by records_from_dicts; ids are the store's
    assert_frame_equal(got.drop("event_id"), want.drop("event_id"))
    assert got["event_id"].to_list() == [r["event_id"] for r in records]
    assert got["labels"][2] == {'k"ey': "v\\al\nue", "ü": ""}


def test_records_without_an_event_id_are_each_stored(db) -> None:
    records = records_from_dicts(_items()[:5])
    for r in records:
        r["event_id"] = ""
    with db.connect() as conn:
        assert len(insert_events(conn, records)) == 5
    assert SqlInbox(db).depth() == 5
    assert pl.Series([r["event_id"] for r in records]).n_unique() == 5


def test_an_idle_worker_wakes_when_an_event_arrives(db) -> None:
    inbox = SqlInbox(db)
    stop = threading.Event()
    assert inbox.wait(stop, 0.05) is False  # nothing arrives: the wait ends empty-handed

    def post() -> None:
        time.sleep(0.2)
        with db.connect() as conn:
            insert_events(conn, records_from_dicts(_items()[:1]))

    poster = threading.Thread(target=post)
    poster.start()
    assert inbox.wait(stop, 60.0) is True  # woken by the event, not by the 60 s bound
    poster.join()
    assert inbox.wait(stop, 60.0) is True  # events wait: no waiting at all

    with db.connect() as conn:
        batch = inbox.claim(10)
        assert batch is not None
        assert inbox.ack(conn, batch)
    stop.set()
    assert inbox.wait(stop, 60.0) is False  # a stopping worker is not held


def test_an_event_id_is_stored_and_queued_once_within_a_request_and_across_requests(db) -> None:
    records = records_from_dicts(_items()[:6])
    for i, r in enumerate(records):
        r["value"] = None  # a column of nothing but nulls still has its type
        r["event_id"] = f"tool:{i}"
    records[3] = dict(records[1])  # the same event twice in one request
    with db.connect() as conn:
        first = insert_events(conn, records, return_ids=True)
    with db.connect() as conn:  # a retried delivery with one new event
        again = insert_events(conn, [*records[:2], *records_from_dicts(_items()[6:7])])
    assert sorted(first) == sorted({r["event_id"] for r in records})
    assert len(first) == 5
    assert len(again) == 1
    batch = SqlInbox(db).claim(1000)
    assert batch is not None
    # queued in the order they were accepted, each once
    want = [r["event_id"] for i, r in enumerate(records) if i != 3]
    assert batch.events["event_id"].to_list()[:5] == want
    assert batch.events.height == 6


# Any text a tool may send, less NUL (refused at ingest) and lone surrogates.
_texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10)


@st.composite
def _stored_items(draw: st.DrawFn) -> dict[str, object]:
    return {
        "ts": datetime(2026, 3, 29, 1, tzinfo=UTC)
        + timedelta(microseconds=draw(st.integers(0, 10**12))),
        "source": draw(_texts),
        "title": draw(_texts),
        "service": draw(_texts),
        "host": draw(_texts),
        "description": draw(_texts),
        "severity": draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "kind": draw(st.sampled_from(["alert", "event"])),
        # every finite double and both infinities (NaN is stored as null on SQLite)
        "value": draw(st.none() | st.floats(allow_nan=False)),
        "labels": draw(st.dictionaries(_texts, _texts, max_size=3)),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=st.lists(_stored_items(), min_size=1, max_size=6))
def test_events_read_back_exactly_as_stored(db, items) -> None:
    """What the worker reads (a claimed batch, a journaled one by primary key) equals what was
    stored, value for value: any text, every double, labels in key order."""
    records = records_from_dicts(items)
    with db.connect() as conn:
        pks = insert_events(conn, records)
    want = events_frame([{**r, "labels": dict(sorted(r["labels"].items()))} for r in records]).drop(
        "raw"
    )
    with db.read() as conn:
        assert_frame_equal(events_by_pk(conn, pks), want)
        assert_frame_equal(events_by_pk(conn, pks[::-1]), want.reverse())
    inbox = SqlInbox(db)
    batch = inbox.claim(100)
    assert batch is not None
    assert_frame_equal(batch.events, want)
    assert list(batch.event_pks) == pks
    with db.connect() as conn:
        assert inbox.ack(conn, batch)


def test_values_json_cannot_hold_are_stored_as_each_store_keeps_them(db) -> None:
    """PostgreSQL's events arrive as JSON, which has no infinity or NaN: they go as text. SQLite
    keeps infinities and stores NaN as null (its own rule)."""
    items = [{**_items()[i], "value": v} for i, v in enumerate([math.inf, -math.inf, math.nan])]
    with db.connect() as conn:
        pks = insert_events(conn, records_from_dicts(items))
    with db.read() as conn:
        got = events_by_pk(conn, pks)["value"].to_list()
    assert got[:2] == [math.inf, -math.inf]
    if db.is_sqlite:
        assert got[2] is None
    else:
        assert math.isnan(got[2])
