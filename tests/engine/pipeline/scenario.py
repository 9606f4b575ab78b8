"""Scenario helpers for the engine's edge tests: events at seconds after T0, run whole and one
event per batch (both must give the same transitions), fires and resolves as plain tuples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from engine.pipeline.engine import Engine, compile_for_engine
from engine.schema import events_from_dicts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(seconds: float, **fields: Any) -> dict[str, Any]:
    return {"ts": at(seconds).isoformat(), "title": "x", "host": "h1", **fields}


def key(**fields: str) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def feed_engine(
    rules: str, events: list[dict[str, Any]], until: float | None, batch: int | None
) -> tuple[pl.DataFrame, Engine]:
    """Every transition of `events` fed `batch` at a time (all at once for None), then the
    clock advanced to `until`; and the engine, for tests that look at its state."""
    engine = Engine(compile_for_engine(rules))
    frame = events_from_dicts(events, received_at=T0)
    size = batch or frame.height
    outs = [engine.feed(frame.slice(i, size)) for i in range(0, frame.height, size)]
    if until is not None:
        outs.append(engine.advance(at(until)))
    return pl.concat(outs), engine


def feed(
    rules: str, events: list[dict[str, Any]], until: float | None, batch: int | None
) -> pl.DataFrame:
    return feed_engine(rules, events, until, batch)[0]


def transitions(
    rules: str, events: list[dict[str, Any]], until: float | None = None
) -> pl.DataFrame:
    """Fires and resolves (no repeats), the same whole and one event per batch."""
    whole = feed(rules, events, until, None)
    assert_frame_equal(feed(rules, events, until, 1), whole)
    return whole.filter(pl.col("transition") != "repeated")


def run(
    rules: str, events: list[dict[str, Any]], until: float | None = None
) -> list[tuple[Any, ...]]:
    """(seconds after T0, key, transition, value) of every fire and resolve."""
    return [
        ((r["at"] - T0).total_seconds(), r["key"], r["transition"], r["value"])
        for r in transitions(rules, events, until).iter_rows(named=True)
    ]


H1 = key(host="h1")
