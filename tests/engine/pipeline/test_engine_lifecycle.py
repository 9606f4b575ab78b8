"""An engine over time: rules swapped while running, and state saved and restored byte for byte.

Each scenario runs whole and one event per batch; both must print the same transitions.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from engine.pipeline.engine import Engine, compile_for_engine
from engine.pipeline.state import EngineState
from engine.schema import events_from_dicts
from tests.engine.pipeline.scenario import T0, at, ev

BEFORE = """
rule keep "Keep {{ host }}" when title == "x" by host end
rule retitle "Old {{ host }}" when title == "x" by host team old end
rule change when title == "x" by host end
rule drop when title == "x" by host end
rule win when title == "x" count() >= 2 within 1h by host end
"""
AFTER = """
rule keep "Keep {{ host }}" when title == "x" by host end
rule retitle "New {{ host }}" when title == "x" by host team new end
rule change when title == "x" and value > 0 by host end
rule win when title == "x" count() >= 2 within 1h by host end
rule added when title == "x" by host end
"""


def test_swap_rules_resolves_removed_and_changed_rules_and_keeps_the_rest() -> None:
    engine = Engine(compile_for_engine(BEFORE))
    first = engine.feed(events_from_dicts([ev(0, value=1), ev(10, value=2)], received_at=T0))
    first = pl.concat([first, engine.advance(at(10))])
    assert sorted(first.filter(pl.col("transition") == "fired")["rule"]) == [
        "change",
        "drop",
        "keep",
        "retitle",
        "win",
    ]
    swapped = engine.swap_rules(compile_for_engine(AFTER), at=at(20))
    assert sorted(zip(swapped["rule"], swapped["transition"].cast(pl.String), strict=True)) == [
        ("change", "resolved"),
        ("drop", "resolved"),
    ]
    assert set(swapped["at"]) == {at(20)}
    later = pl.concat(
        [engine.feed(events_from_dicts([ev(30, value=3)], received_at=T0)), engine.advance(at(30))]
    )
    got = sorted(zip(later["rule"], later["transition"].cast(pl.String), strict=True))
    # Unchanged rules (a new title or team included) still hold their alerts: the event is a
    # repeat, and the window rule, still over its threshold, prints nothing; the changed rule
    # starts afresh and fires, as does the new one.
    assert got == [
        ("added", "fired"),
        ("change", "fired"),
        ("keep", "repeated"),
        ("retitle", "repeated"),
    ]
    # The window kept its events: it resolves when the event at 10 leaves, at 10 + 1h.
    end = engine.advance(at(7200))
    assert [(r["rule"], r["transition"], r["at"]) for r in end.iter_rows(named=True)] == [
        ("win", "resolved", at(3610))
    ]


BUSY = """
rule e "E {{ host }} {{ value }}" when title == "x" by host for 30s resolve after 2m end
rule n when title == "x" new within 10m by service resolve after 5m end
rule w when title == "x" p90(value) > 10 within 1m by host end
rule s when title == "x" count() > prev(count()) within 1m by service end
rule a when title == "x" absent for 90s by host end
route r when severity >= "high" notify pager end
silence q when host == "h2" from 2026-01-01T00:02:00Z until 2026-01-01T00:04:00Z end
inhibit i when rule == "w" while rule == "e" on host end
correlate c when true by service within 3m end
"""


def _stream() -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        out.append(
            ev(
                i * 7 + (i % 3),
                host=f"h{i % 3}",
                service=f"s{i % 2}",
                value=float((i * 37) % 23),
                severity=["low", "high", "critical"][i % 3],
                status="resolved" if i % 11 == 10 else "firing",
            )
        )
    out.insert(40, ev(100, host="h1"))  # out of order, within the horizon
    return out


def test_state_restored_at_any_boundary_is_byte_for_byte_and_continues_the_same() -> None:
    rules = compile_for_engine(BUSY)
    events = events_from_dicts(_stream(), received_at=T0)
    straight = Engine(rules)
    want = pl.concat([straight.feed(events.slice(i, 7)) for i in range(0, events.height, 7)])
    want = pl.concat([want, straight.advance(at(3600))])
    for cut in (1, 7, 20, 41, 59):
        engine = Engine(rules)
        head = engine.feed(events.slice(0, cut))
        blob = engine.state.to_bytes()
        restored = Engine(rules, EngineState.from_bytes(blob))
        assert restored.state.to_bytes() == blob
        tail = [restored.feed(events.slice(i, 7)) for i in range(cut, events.height, 7)]
        got = pl.concat([head, *tail, restored.advance(at(3600))])
        assert_frame_equal(got, want)
    assert want.height > 20


def test_state_after_advance_and_swap_round_trips() -> None:
    engine = Engine(compile_for_engine(BUSY))
    engine.feed(events_from_dicts(_stream(), received_at=T0))
    engine.advance(at(500))
    engine.swap_rules(compile_for_engine(BUSY.replace("within 1m by host", "within 2m by host")))
    blob = engine.state.to_bytes()
    assert EngineState.from_bytes(blob).to_bytes() == blob
