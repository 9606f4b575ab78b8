"""Absence rules at their edges (DSL.md §4.5): a heartbeat at the deadline, `for`, and `advance`.

Each scenario runs whole and one event per batch; both must print the same transitions.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from engine.pipeline.engine import Engine, compile_for_engine
from engine.schema import events_from_dicts
from tests.engine.pipeline.scenario import H1, T0, at, ev, key, run

ABSENT = 'rule quiet when title == "beat" absent for 1m by host end'


def beat(seconds: float, **fields: Any) -> dict[str, Any]:
    return ev(seconds, title="beat", **fields)


def test_absence_fires_at_last_seen_plus_d_and_resolves_on_the_next_heartbeat() -> None:
    assert run(ABSENT, [beat(0), beat(30), beat(200)], until=600) == [
        (90, H1, "fired", None),
        (200, H1, "resolved", None),
        (260, H1, "fired", None),
    ]


def test_a_heartbeat_exactly_at_the_deadline_prevents_firing() -> None:
    assert run(ABSENT, [beat(0), beat(60), beat(120)], until=179) == []
    assert run(ABSENT, [beat(0), beat(60), beat(120)], until=180) == [(180, H1, "fired", None)]


def test_advance_makes_deadlines_fall_due_up_to_and_including_until() -> None:
    assert run(ABSENT, [beat(0)], until=59) == []
    assert run(ABSENT, [beat(0)], until=60) == [(60, H1, "fired", None)]
    # Without advance the newest instant stays open and no deadline passes.
    assert run(ABSENT, [beat(0)]) == []


def test_advance_in_steps_gives_what_one_advance_gives() -> None:
    rules = compile_for_engine(ABSENT)
    events = events_from_dicts([beat(0), beat(10, host="h2")], received_at=T0)
    stepped = Engine(rules)
    outs = [stepped.feed(events)] + [stepped.advance(at(s)) for s in (30, 60, 69, 70, 500)]
    once = Engine(rules)
    assert_frame_equal(pl.concat(outs), pl.concat([once.feed(events), once.advance(at(500))]))
    assert pl.concat(outs)["at"].to_list() == [at(60), at(70)]


def test_keys_never_seen_never_fire_and_other_events_do_not_count() -> None:
    events = [beat(0), ev(30), beat(70, host="h2", status="resolved")]
    assert run(ABSENT, events, until=600) == [(60, H1, "fired", None)]


def test_absence_with_for_fires_only_after_the_hold() -> None:
    rules = ABSENT.replace("by host", "by host for 30s")
    assert run(rules, [beat(0), beat(80)], until=600) == [(170, H1, "fired", None)]
    # The heartbeat at 90 comes exactly at the end of the hold: it cancels.
    assert run(rules, [beat(0), beat(90)], until=150) == []


def test_a_late_heartbeat_is_ignored() -> None:
    # Horizon 5m (the window rule); h2's beat with ts 50 arrives at watermark 400: too late to
    # resolve h2's absence, which fired at 60.
    rules = ABSENT + '\nrule w when title == "w" count() > 1 within 5m end\n'
    events = [beat(0, host="h2"), beat(400), beat(50, host="h2")]
    assert run(rules, events, until=430) == [(60, key(host="h2"), "fired", None)]
