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
from hypothesis import HealthCheck, given, note, settings
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


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    blocks = []
    for i in range(draw(st.integers(1, 3))):
        agg = draw(st.sampled_from(["min", "max", "p50", "p90", "p95", "p99"]))
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        threshold = draw(st.sampled_from(THRESHOLDS))
        width = draw(st.sampled_from(["30s", "1m", "2m"]))
        lines = [f'rule r{i} "{{{{ value }}}}"', '  when title == "x"']
        lines.append(f"  {agg}(labels.v) {op} {threshold!r} within {width}")
        lines.append(f"  {draw(st.sampled_from(['', 'by host']))}")
        if draw(st.booleans()):
            lines.append(f"  for {draw(st.sampled_from(['10s', '45s']))}")
        lines.append("end")
        blocks.append("\n".join(lines))
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
    note(rules)
    counted = run(rules, stream, batch)
    # The reference: no rule is a cut, so each rolls its order statistic at every point.
    with patch.object(cuts.Cut, "of", classmethod(lambda cls, spec: None)):
        rolled = run(rules, stream, batch)
    assert_frame_equal(counted, rolled, check_exact=True)
