"""Order statistics against a constant, decided by counting (engine/pipeline/cuts.py).

The reference is the same engine with counting switched off, which rolls the order statistic
at every point: for random rules (min, max and every percentile, every comparison, thresholds
that the values hit exactly or miss by one ulp) and random streams (ties, late events,
infinities, values far apart, missing and non-numeric values), both must give the same
transitions, values included, at any batch size.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.pipeline import cuts
from engine.pipeline.engine import Engine, compile_for_engine
from engine.pipeline.windows import WindowRule
from engine.schema import events_from_dicts

pytestmark = pytest.mark.hypothesis

START = datetime(2026, 5, 1, tzinfo=UTC)
THRESHOLDS = [0.0, 10.0, 100.0, -3.25]
# Each threshold, its neighbours one ulp away, and values that make interpolation round.
VALUES = sorted(
    {
        *THRESHOLDS,
        *(math.nextafter(t, math.inf) for t in THRESHOLDS),
        *(math.nextafter(t, -math.inf) for t in THRESHOLDS),
        0.1,
        0.3,
        7.0,
        99.5,
        250.0,
        1e15,
        -1e15,
    }
)
TEXT = [repr(v) for v in VALUES] + ["1e999", "-1e999", "abc", ""]


def rule_block(draw: st.DrawFn, i: int, condition: str) -> str:
    """Window rule r{i} over the events titled "x": `condition` within a drawn width, by
    host or not, with a `for` or not."""
    width = draw(st.sampled_from(["30s", "1m", "2m"]))
    lines = [f'rule r{i} "{{{{ value }}}}"', '  when title == "x"']
    lines.append(f"  {condition} within {width}")
    lines.append(f"  {draw(st.sampled_from(['', 'by host']))}")
    if draw(st.booleans()):
        lines.append(f"  for {draw(st.sampled_from(['10s', '45s']))}")
    lines.append("end")
    return "\n".join(lines)


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    blocks = []
    for i in range(draw(st.integers(1, 3))):
        agg = draw(st.sampled_from(["min", "max", "p50", "p90", "p95", "p99"]))
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        threshold = draw(st.sampled_from(THRESHOLDS))
        blocks.append(rule_block(draw, i, f"{agg}(labels.v) {op} {threshold!r}"))
    return "\n\n".join(blocks)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    t = START
    out = []
    for i in range(draw(st.integers(1, 60))):
        t += timedelta(seconds=draw(st.sampled_from([0, 1, 3, 10, 25, 70])))
        ts = t
        if draw(st.integers(0, 5)) == 0:  # arrives late
            ts = t - timedelta(seconds=draw(st.sampled_from([2, 20, 50, 200])))
        labels = {"v": draw(st.sampled_from(TEXT))} if draw(st.integers(0, 9)) else {}
        out.append(
            {
                "ts": ts.isoformat(),
                "event_id": f"e{i}",
                "title": "x",
                "host": draw(st.sampled_from(["h1", "h2"])),
                "labels": labels,
            }
        )
    return out


def run(rules: str, stream: list[dict[str, Any]], batch: int) -> pl.DataFrame:
    engine = Engine(compile_for_engine(rules))
    frame = events_from_dicts(stream, received_at=START)
    outs = [engine.feed(frame.slice(i, batch)) for i in range(0, frame.height, batch)]
    outs.append(engine.advance(START + timedelta(hours=1)))
    return pl.concat(outs)


def test_the_rules_here_are_decided_by_counting() -> None:
    rules = compile_for_engine(
        "rule r when true p95(lat) > 1400 within 5m end\n"
        "rule s when true max(lat) <= 2 within 1m end\n"
        "rule u when true avg(lat) > 1 within 1m end\n"
        "rule p when true p50(lat) > prev(p50(lat)) within 1m end"
    )
    cut = {r.rule_id: WindowRule.of(r).cut for r in rules.rules}
    assert cut["r"] == cuts.Cut(0.95, ">", 1400.0)
    assert cut["s"] == cuts.Cut(1.0, "<=", 2.0)
    assert cut["u"] is None  # not an order statistic
    assert cut["p"] is None  # the threshold is not a constant


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_files(), stream=streams(), batch=st.sampled_from([1, 3, 1000]))
def test_counting_decides_as_the_order_statistic_would(
    rules: str, stream: list[dict[str, Any]], batch: int
) -> None:
    # The reference: no rule is a cut, so each rolls its order statistic at every point.
    assert_same_without(cuts.Cut, rules, stream, batch)


def assert_same_without(
    shortcut: type, rules: str, stream: list[dict[str, Any]], batch: int
) -> None:
    """The transitions, values included, are those of the engine with no rule given a
    `shortcut` (cuts.Cut, cuts.Bound: its `of` returns None for every rule)."""
    note(rules)
    taken = run(rules, stream, batch)
    with patch.object(shortcut, "of", classmethod(lambda cls, spec: None)):
        reference = run(rules, stream, batch)
    assert_frame_equal(taken, reference, check_exact=True)


@st.composite
def bounded_rule_files(draw: st.DrawFn) -> str:
    """Rules whose constant threshold some groups' rows cannot reach (cuts.Bound): counts
    near the groups' sizes, rates, distinct values, order statistics on either side."""
    blocks = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["count()", "rate()", "count_distinct(labels.v)", "value"]))
        if kind == "value":
            agg = f"{draw(st.sampled_from(['min', 'max', 'p50', 'p99']))}(labels.v)"
            threshold = repr(draw(st.sampled_from(THRESHOLDS)))
        elif kind == "rate()":
            agg, threshold = kind, draw(st.sampled_from(["0.01", "0.05", "0.1"]))
        else:
            agg, threshold = kind, str(draw(st.integers(0, 5)))
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        blocks.append(rule_block(draw, i, f"{agg} {op} {threshold}"))
    return "\n\n".join(blocks)


def _at(*values: str) -> list[dict[str, Any]]:
    """Events a second apart, one per value."""
    return [
        {
            "ts": (START + timedelta(seconds=i)).isoformat(),
            "event_id": f"e{i}",
            "title": "x",
            "host": "h1",
            "labels": {"v": v},
        }
        for i, v in enumerate(values)
    ]


def _rule(condition: str) -> str:
    return f'rule r0 "{{{{ value }}}}"\n  when title == "x"\n  {condition}\nend'


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=bounded_rule_files(), stream=streams(), batch=st.sampled_from([1, 3, 1000]))
# A group exactly at its bound can still meet a condition that admits equality.
@example(rules=_rule("max(labels.v) >= 10.0 within 1m"), stream=_at("3", "10.0"), batch=1)
@example(rules=_rule("min(labels.v) <= -3.25 within 1m"), stream=_at("-3.25", "7"), batch=1)
@example(rules=_rule("p99(labels.v) >= 100.0 within 1m"), stream=_at("100.0"), batch=1000)
@example(rules=_rule("count() >= 2 within 1m"), stream=_at("1", "2"), batch=1)
@example(rules=_rule("count_distinct(labels.v) >= 2 within 1m"), stream=_at("a", "b"), batch=1)
@example(rules=_rule("rate() >= 0.1 within 30s"), stream=_at(*"abc"), batch=1)
def test_groups_that_cannot_meet_the_threshold_are_skipped_as_if_evaluated(
    rules: str, stream: list[dict[str, Any]], batch: int
) -> None:
    # The reference: no rule has a bound, so every group's points are evaluated.
    assert_same_without(cuts.Bound, rules, stream, batch)


def test_the_bounds_of_these_rules() -> None:
    rules = compile_for_engine(
        "rule c when true count() > 40 within 1m end\n"
        "rule r when true rate() >= 0.5 within 2m end\n"
        "rule d when true count_distinct(user) >= 25 within 5m end\n"
        "rule p when true p95(lat) > 1400 within 5m end\n"
        "rule m when true max(lat) <= 2 within 1m end\n"
        "rule l when true count() < 3 within 1m end\n"
        "rule s when true count() > 3 * prev(count()) within 1m end"
    )
    bound = {r.rule_id: WindowRule.of(r).bound for r in rules.rules}
    assert bound["c"] == cuts.Bound(cuts.ROWS, ">", 40.0)
    assert bound["r"] == cuts.Bound(cuts.ROWS, ">=", 0.5, seconds=120.0)
    assert bound["d"] == cuts.Bound(cuts.VALUED, ">=", 25.0)
    assert bound["p"] == cuts.Bound(cuts.LARGEST, ">", 1400.0)
    assert bound["m"] == cuts.Bound(cuts.SMALLEST, "<=", 2.0)
    assert bound["l"] is None  # an empty window has count 0: any group can meet it
    assert bound["s"] is None  # the threshold is not a constant
