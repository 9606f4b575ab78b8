"""Fired transitions become alert and history rows column-wise (Polars writes SQLite's values
and PostgreSQL's COPY text); every value must come back as the row-by-row reference
(`_alert_values`) would have stored it, whatever the text holds, on both stores."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.schema import TRANSITION_SCHEMA
from engine.store.db import orm
from engine.store.models import Alert, AlertHistory, Incident
from engine.store.transitions import ENGINE_ACTOR, _alert_values, apply_transitions

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
_keys = itertools.count()

# Any text a tool may send, less NUL (PostgreSQL text cannot hold it) and lone surrogates.
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
maybe_texts = st.none() | texts
times = st.integers(0, 10**9).map(lambda us: T0 + timedelta(microseconds=us))


@st.composite
def fired_rows(draw: st.DrawFn) -> dict[str, object]:
    at = draw(times)
    correlated = draw(st.booleans())
    return {
        "at": at,
        "rule": draw(st.sampled_from(["cpu", "disk \\ full"])),
        "key": orjson.dumps({"n": next(_keys), "t": draw(texts)}).decode(),
        "transition": "fired",
        "severity": draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
        "value": draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        "title": draw(maybe_texts),
        "labels": draw(st.dictionaries(texts, texts, max_size=3)),
        "team": draw(maybe_texts),
        "notify": draw(st.lists(texts, max_size=2)),
        "escalate": draw(
            st.lists(
                st.fixed_dictionaries({"after_ms": st.integers(0, 10**7), "target": texts}),
                max_size=2,
            )
        ),
        "muted_by": draw(st.lists(texts, max_size=2)),
        "incident_by": "by service" if correlated else None,
        "incident_key": orjson.dumps({"service": draw(texts)}).decode() if correlated else None,
        "incident_opened": T0 if correlated else None,
        "occurrences": draw(st.none() | st.integers(0, 5)),
        "first_seen": draw(st.none() | times),
        "last_seen": at,
        "event_id": draw(maybe_texts),
        "event_ts": draw(st.none() | times),
        "fingerprint": draw(maybe_texts),
        "source": draw(maybe_texts),
        "service": draw(maybe_texts),
        "environment": draw(maybe_texts),
        "host": draw(maybe_texts),
        "description": draw(maybe_texts),
        "event_labels": draw(st.none() | st.dictionaries(texts, texts, max_size=2)),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(fired_rows(), min_size=1, max_size=6))
def test_fired_alerts_are_stored_as_the_row_by_row_reference_would(db, rows) -> None:
    frame = pl.DataFrame(rows, schema=TRANSITION_SCHEMA)
    with db.connect() as conn:
        applied = apply_transitions(conn, frame)
    assert len(applied.fired) == len(rows)
    with db.read() as conn:
        session = orm(conn)
        stored = {
            a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(applied.fired)))
        }
        history = session.scalars(
            select(AlertHistory)
            .where(AlertHistory.alert_id.in_(applied.fired))
            .order_by(AlertHistory.id)
        ).all()
        incidents = {i.id: (i.correlate, i.key) for i in session.scalars(select(Incident))}
    for alert_id, row in zip(applied.fired, frame.iter_rows(named=True), strict=True):
        got = stored[alert_id]
        want = _alert_values(row, None, T0)
        for column, value in want.items():
            if column in ("updated_at", "incident_id"):
                continue
            assert getattr(got, column) == value, column
        if row["incident_by"] is None:
            assert got.incident_id is None
        else:
            assert incidents[got.incident_id] == (row["incident_by"], row["incident_key"])
    assert [h.alert_id for h in history] == applied.fired
    for h, row, alert_id in zip(history, frame.iter_rows(named=True), applied.fired, strict=True):
        muted = list(row["muted_by"])
        assert (h.at, h.actor, h.from_status) == (row["at"], ENGINE_ACTOR, None)
        assert h.action == ("suppressed" if muted else "fired")
        assert h.to_status == stored[alert_id].status
        assert h.note == (("muted by " + ", ".join(muted)) if muted else None)
        assert h.details == {
            "rule": row["rule"],
            "key": orjson.loads(row["key"]),
            "muted_by": muted,
        }


def test_a_batch_larger_than_one_statement_gets_each_row_its_own_id(db) -> None:
    """SQLite takes ~1,000 alert rows a statement: 2,500 rows span three, and every id still
    belongs to its own row (ids are handed back in the order of the frame's rows)."""
    rows = [
        {
            "at": T0 + timedelta(microseconds=i),
            "rule": "bulk",
            "key": f'{{"n":{i}}}',
            "transition": "fired",
            "severity": "high",
            "title": f"row {i}",
            "labels": {},
            "notify": [],
            "escalate": [],
            "muted_by": [],
        }
        for i in range(2_500)
    ]
    frame = pl.DataFrame(rows, schema=TRANSITION_SCHEMA)
    with db.connect() as conn:
        applied = apply_transitions(conn, frame)
    with db.read() as conn:
        stored = dict(conn.execute(select(Alert.id, Alert.key).where(Alert.rule == "bulk")).all())
        history = conn.execute(select(AlertHistory.alert_id, AlertHistory.at)).all()
    assert [stored[i] for i in applied.fired] == [f'{{"n":{i}}}' for i in range(2_500)]
    assert dict(history) == {
        alert_id: T0 + timedelta(microseconds=i) for i, alert_id in enumerate(applied.fired)
    }


def _fired(key: str, at: datetime, title: str) -> dict[str, object]:
    return {
        "at": at,
        "rule": "disk",
        "key": key,
        "transition": "fired",
        "severity": "high",
        "title": title,
        "labels": {},
        "notify": [],
        "escalate": [],
        "muted_by": [],
    }


def test_an_alert_the_store_still_holds_open_is_replaced_when_its_key_fires_again(db) -> None:
    """The engine fires only where it holds no open alert; the store may still hold one (the
    engine's state was rebuilt without it, or a person reopened it). It is closed as replaced,
    and the rest of the batch is stored as usual."""
    first = pl.DataFrame([_fired('{"h":"a"}', T0, "old a")], schema=TRANSITION_SCHEMA)
    with db.connect() as conn:
        [old_id] = apply_transitions(conn, first).fired
    batch = pl.DataFrame(
        [
            _fired('{"h":"a"}', T0 + timedelta(minutes=5), "new a"),
            _fired('{"h":"b"}', T0 + timedelta(minutes=5), "new b"),
        ],
        schema=TRANSITION_SCHEMA,
    )
    with db.connect() as conn:
        applied = apply_transitions(conn, batch)
    with db.read() as conn:
        rows = {a.id: a for a in orm(conn).scalars(select(Alert).where(Alert.rule == "disk")).all()}
    assert len(applied.fired) == 2
    assert old_id not in applied.fired
    assert (rows[old_id].is_open, rows[old_id].status, rows[old_id].resolution) == (
        False,
        "resolved",
        "replaced",
    )
    new_a, new_b = (rows[i] for i in applied.fired)
    assert (new_a.title, new_a.is_open, new_b.title, new_b.is_open) == (
        "new a",
        True,
        "new b",
        True,
    )
    assert applied.transitions["alert_id"].to_list() == applied.fired
