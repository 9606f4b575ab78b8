"""Window rules at their edges (DSL.md §4.4, §4.1): half-open windows, expiries, late events,
every aggregate (percentiles checked against NumPy), rate() and prev() spikes.

Each scenario runs whole and one event per batch; both must print the same transitions.
"""

from __future__ import annotations

import math
from typing import Any
from unittest.mock import patch

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.pipeline import cuts
from tests.engine.pipeline.scenario import H1, T0, at, ev, feed_engine, key, transitions


def run(
    rules: str, events: list[dict[str, Any]], until: float | None = None
) -> list[tuple[float, str, str, str, float | None]]:
    """(seconds after T0, rule, key, transition, value) of every fire and resolve."""
    return [
        ((r["at"] - T0).total_seconds(), r["rule"], r["key"], r["transition"], r["value"])
        for r in transitions(rules, events, until).iter_rows(named=True)
    ]


COUNT2 = """
rule w
  when title == "x"
  count() >= 2 within 1m
  by host
end
"""


def test_an_event_exactly_w_before_is_out_of_the_window() -> None:
    # (t - W, t]: at t = 60 the event at 0 has left, so the count is 1.
    assert run(COUNT2, [ev(0), ev(60)], until=600) == []


def test_an_event_at_t_is_in_the_window() -> None:
    assert run(COUNT2, [ev(0), ev(59)], until=600) == [
        (59, "w", H1, "fired", 2),
        (60, "w", H1, "resolved", 1),
    ]


def test_two_events_at_one_instant_both_count() -> None:
    assert run(COUNT2, [ev(0), ev(0)], until=600) == [
        (0, "w", H1, "fired", 2),
        (60, "w", H1, "resolved", 0),
    ]


def test_an_event_at_another_events_expiry_keeps_the_count() -> None:
    # At 60 the event at 0 leaves and the one at 60 enters: still 2, nothing printed then.
    assert run(COUNT2, [ev(0), ev(30), ev(60)], until=600) == [
        (30, "w", H1, "fired", 2),
        (90, "w", H1, "resolved", 1),
    ]


def test_a_window_is_evaluated_when_its_events_expire_without_advance() -> None:
    # The expiry at 60 (the event at 0 leaves) is closed by the next event, with no advance.
    assert run(COUNT2, [ev(0), ev(10), ev(200, host="h2")]) == [
        (10, "w", H1, "fired", 2),
        (60, "w", H1, "resolved", 1),
    ]


def test_keys_are_counted_separately_and_resolved_events_do_not_count() -> None:
    events = [ev(0), ev(1, host="h2"), ev(2, status="resolved"), ev(3, host="h2")]
    assert run(COUNT2, events, until=600) == [
        (3, "w", key(host="h2"), "fired", 2),
        (61, "w", key(host="h2"), "resolved", 1),
    ]


def test_for_on_a_window_fires_only_when_true_for_the_whole_hold() -> None:
    rules = COUNT2.replace("by host", "by host\n  for 30s")
    # True from 10 to 60 (the event at 0 expires at 60): fires at 40 with the count then.
    assert run(rules, [ev(0), ev(10)], until=600) == [
        (40, "w", H1, "fired", 2),
        (60, "w", H1, "resolved", 1),
    ]
    # True from 10 to 40 exactly: false again at the deadline, so it never fires.
    rules = COUNT2.replace("within 1m", "within 30s").replace("by host", "by host\n  for 30s")
    assert run(rules, [ev(0), ev(10)], until=600) == []


@pytest.mark.parametrize(
    ("condition", "values", "fired"),
    [
        # [1, 2, 100] has a median of 2; without the 1, of 51
        ("p50(value) > 50", [1, 2, 100], 51),
        # the smallest value leaves and the smallest left is above 5
        ("min(value) > 5", [1, 10, 20], 10),
        ("avg(value) > 50", [1, 60, 70], 65),
    ],
)
def test_a_condition_that_turns_true_where_an_event_leaves_its_window(
    condition: str, values: list[float], fired: float
) -> None:
    """Fires at 60, where the event at 0 leaves: also fed one event per batch, where 60 falls
    in a range with no event of h1 (another host's events at 50 and 200 close the ranges)."""
    rules = COUNT2.replace("count() >= 2", condition)
    events = [ev(t, value=v) for t, v in zip((0, 30, 40), values, strict=True)]
    events += [ev(50, host="h2", value=0), ev(200, host="h2", value=0)]
    assert run(rules, events, until=600) == [
        (60, "w", H1, "fired", fired),
        (100, "w", H1, "resolved", None),
    ]


# ---------------------------------------------------------------- late events

LATE_RULES = """
rule w
  when title == "x"
  count() >= 2 within 1m
  by host
end

rule e
  when title == "x"
  by host
end
"""


def test_an_event_beyond_the_horizon_is_late_ignored_by_windows_but_not_by_event_rules() -> None:
    # At watermark 300, an event with ts 200 is 100 s behind: more than the 1m horizon.
    events = [ev(300, host="h2"), ev(300), ev(200)]
    out, engine = feed_engine(LATE_RULES, events, 600, None)
    assert engine.state.late_events == 1
    rows = [
        ((r["at"] - T0).total_seconds(), r["key"], r["transition"], r["occurrences"])
        for r in out.iter_rows(named=True)
    ]
    # No window fires; the late event counts for the event rule at 300, folded into the fire
    # of that instant (one row per alert and instant).
    assert rows == [(300, H1, "fired", 2), (300, key(host="h2"), "fired", 1)]
    assert run(LATE_RULES, events, until=600) == [
        (300, "e", H1, "fired", None),
        (300, "e", key(host="h2"), "fired", None),
    ]


def test_a_late_event_within_the_horizon_counts_from_its_arrival_until_ts_plus_w() -> None:
    # ts 270 arrives at watermark 300: it is in the window from 300 (not before) to 330.
    events = [ev(300), ev(270)]
    _out, engine = feed_engine(COUNT2, events, 600, None)
    assert engine.state.late_events == 0
    assert run(COUNT2, events, until=600) == [
        (300, "w", H1, "fired", 2),
        (330, "w", H1, "resolved", 1),
    ]


def test_a_late_event_does_not_change_what_was_already_closed() -> None:
    # ts 270 arrives at 300: the instant 290 (when 230 left) was closed without it.
    events = [ev(230), ev(280), ev(300, host="h2"), ev(270)]
    assert run(COUNT2, events, until=600) == [
        (280, "w", H1, "fired", 2),
        (290, "w", H1, "resolved", 1),
        (300, "w", H1, "fired", 2),
        (330, "w", H1, "resolved", 1),
    ]


def test_a_resolve_reports_the_latest_arrival_even_when_its_window_ended_earlier() -> None:
    # e2 arrives after e1, in the same instant, but is 25 s older: it leaves the window at
    # 95, e1 at 120, when the alert resolves. The context is the latest event that had
    # arrived, e2, whether or not the range that evaluates 120 still holds e2's row (one
    # event per batch: e3 at 100 closes the instants before it, and drops e2's row).
    events = [
        ev(30, event_id="e1"),
        ev(5, event_id="e2"),
        ev(100, event_id="e3", host="h2"),
        ev(3600, event_id="e4", host="h3"),
    ]
    rows = transitions(COUNT2.replace("count() >= 2", "count() >= 1").replace("1m", "90s"), events)
    got = [
        ((r["at"] - T0).total_seconds(), r["transition"], r["event_id"])
        for r in rows.filter(pl.col("key") == H1).iter_rows(named=True)
    ]
    assert got == [(30, "fired", "e2"), (120, "resolved", "e2")]


# ---------------------------------------------------------------- aggregates

VALUES = ["12", "7.5", "100", "3", "55.25", "18", "abc", "", "-4", "1e2", "64", "31"]


def _numeric(values: list[str]) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except ValueError:
            continue
    return out


def _at_once(
    agg: str, rolled: bool, values: list[str] = VALUES, condition: str = "> -1000000"
) -> list[tuple[float, str, str, str, float | None]]:
    """The fires and resolves of `agg CONDITION` over `values`, all at one instant. With
    `rolled`, an order statistic rolls over the window instead of being decided by counting
    the values on either side of the constant (cuts.py)."""
    rules = f"""
rule w
  when title == "x"
  {agg} {condition} within 1m
end
"""
    events = [ev(0, fingerprint="f", labels={"lat": v}) for v in values]
    events.append(ev(0, fingerprint="f"))  # no label at all
    if not rolled:
        return run(rules, events, until=600)
    with patch.object(cuts.Cut, "of", classmethod(lambda cls, spec: None)):
        return run(rules, events, until=600)


def _fired_value(agg: str, rolled: bool) -> float | None:
    """The aggregate over VALUES as the window rule reports it when it fires."""
    fired = [r for r in _at_once(agg, rolled) if r[3] == "fired"]
    assert len(fired) == 1
    assert fired[0][0] == 0
    return fired[0][4]


@pytest.mark.parametrize("rolled", [False, True], ids=["counted", "rolled"])
@pytest.mark.parametrize(("name", "q"), [("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)])
def test_percentiles_interpolate_linearly_as_numpy(name: str, q: int, rolled: bool) -> None:
    want = float(np.percentile(_numeric(VALUES), q, method="linear"))
    got = _fired_value(f"{name}(lat)", rolled)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("rolled", [False, True], ids=["counted", "rolled"])
@pytest.mark.parametrize(
    ("agg", "values"),
    [
        ("p50", ["-1e999", "3"]),
        ("p90", ["-1e999", "3"]),
        ("p50", ["3", "1e999"]),
        ("p90", ["-1e999", "-1e999"]),
        ("p90", ["1e999", "1e999", "1"]),
        ("p50", ["1e999", "7", "1e999", "-2"]),
        ("p50", ["-1e999", "1e999"]),
        ("avg", ["-1e999", "1e999"]),
        ("avg", ["1e999", "5"]),
    ],
)
def test_infinite_values_aggregate_as_duckdb_does(
    agg: str, values: list[str], rolled: bool
) -> None:
    """An interpolation with an infinite end is that infinity, as DuckDB's quantile_cont has
    it (Polars' kernels and NumPy give NaN for some of these); what is NaN there (between
    -inf and +inf, the mean of both) is no value, and no condition holds over it."""
    con = duckdb.connect()
    sql = f"quantile_cont(v, 0.{agg[1:]})" if agg.startswith("p") else "avg(v)"
    want = con.execute(
        f"SELECT {sql} FROM (SELECT unnest(?::DOUBLE[]) AS v)", [[float(v) for v in values]]
    ).fetchone()[0]
    rows = _at_once(f"{agg}(lat)", rolled, values, condition="!= 0.5")
    if math.isnan(want):
        assert rows == []
    else:
        assert [(r[0], r[3], r[4]) for r in rows] == [(0, "fired", want), (60, "resolved", None)]


@pytest.mark.parametrize("rolled", [False, True], ids=["counted", "rolled"])
@pytest.mark.parametrize(
    ("agg", "want"),
    [
        ("sum(lat)", float(np.sum(_numeric(VALUES)))),
        ("avg(lat)", float(np.mean(_numeric(VALUES)))),
        ("min(lat)", -4.0),
        ("max(lat)", 100.0),
        ("count()", len(VALUES) + 1.0),
        ("rate()", (len(VALUES) + 1) / 60),
    ],
)
def test_numeric_aggregates_skip_missing_and_non_numeric_values(
    agg: str, want: float, rolled: bool
) -> None:
    assert _fired_value(agg, rolled) == pytest.approx(want, rel=1e-12)


def test_percentiles_over_a_sliding_window_match_numpy_at_each_transition() -> None:
    rules = """
rule w
  when title == "x"
  p90(lat) >= 50 within 1m
end
"""
    lats = [10, 20, 90, 30, 40, 15, 12, 11]
    events = [ev(i * 20, fingerprint="f", labels={"lat": str(v)}) for i, v in enumerate(lats)]
    rows = run(rules, events, until=600)

    def p90_at(t: float) -> float:
        inside = [v for i, v in enumerate(lats) if t - 60 < i * 20 <= t]
        return float(np.percentile(inside, 90, method="linear"))

    # 90 enters at 40 and leaves at 100; each transition reports the p90 of its window.
    assert [(r[0], r[3]) for r in rows] == [(40, "fired"), (100, "resolved")]
    assert rows[0][4] == pytest.approx(p90_at(40))
    assert rows[1][4] == pytest.approx(p90_at(100))


def test_count_distinct_counts_distinct_non_empty_values() -> None:
    rules = """
rule scan
  when title == "x"
  count_distinct(labels.port) >= 3 within 1m
  by host
end
"""
    events = [
        ev(0, labels={"port": "22"}),
        ev(1, labels={"port": "22"}),
        ev(2, labels={"port": ""}),
        ev(3),
        ev(4, labels={"port": "80"}),
        ev(5, labels={"port": "443"}),
    ]
    assert run(rules, events, until=600) == [
        (5, "scan", H1, "fired", 3),
        (61, "scan", H1, "resolved", 2),  # the second "22" keeps 22 in until 61
    ]


def test_rate_is_events_per_second_over_the_window() -> None:
    rules = 'rule r when title == "x" rate() > 0.05 within 1m by host end'
    # 4 events in a minute is 0.0667/s > 0.05; 3 is exactly 0.05, not more.
    assert run(rules, [ev(0), ev(10), ev(20), ev(30)], until=600) == [
        (30, "r", H1, "fired", pytest.approx(4 / 60)),
        (60, "r", H1, "resolved", pytest.approx(3 / 60)),
    ]


def test_prev_spike_rule_compares_with_the_window_before() -> None:
    rules = """
rule spike
  when title == "x"
  count() > 2 * prev(count()) + 2 within 1m
  by host
end
"""
    times = [0, 10, 70, 75, 80, 85, 90, 95, 100]
    # At 100: (40, 100] holds 7, (-20, 40] holds 2: 7 > 6. At 135 the window (75, 135] holds
    # 5 and (15, 75] holds 2: 5 > 6 is false.
    assert run(rules, [ev(t) for t in times], until=600) == [
        (100, "spike", H1, "fired", 7),
        (135, "spike", H1, "resolved", 5),
    ]


def test_prev_of_an_empty_window_has_no_average_so_nothing_fires_on_it() -> None:
    rules = """
rule slower
  when title == "x"
  avg(lat) > prev(avg(lat)) + 10 within 1m
  by host
end
"""
    events = [
        ev(0, labels={"lat": "100"}),
        ev(30, labels={"lat": "100"}),
        ev(70, labels={"lat": "150"}),
    ]
    # At 70: (10, 70] averages 125, (-50, 10] averages 100. At 130 the window is empty.
    assert run(rules, events, until=600) == [
        (70, "slower", H1, "fired", 125),
        (130, "slower", H1, "resolved", None),
    ]


def test_prev_of_an_empty_window_counts_zero() -> None:
    rules = 'rule s when title == "x" count() > 2 * prev(count()) within 1m by host end'
    # The first event is a spike over nothing; at 60 the window is empty and (−60, 0] has 1.
    assert run(rules, [ev(0)], until=600) == [
        (0, "s", H1, "fired", 1),
        (60, "s", H1, "resolved", 0),
    ]


def test_a_held_fire_after_the_window_emptied_keeps_the_event_it_last_saw() -> None:
    # `count() < 2` holds from 0 (one event, which leaves at 10); `for 1m` fires at 60, in the
    # batch of the event at 200 when fed one by one, with no window event carried any more:
    # the alert still renders from the event at 0 (its info row once went missing).
    rules = 'rule quiet "quiet on {{ host }}"\n  when exists(labels.zone)\n'
    rules += "  count() < 2 within 10s\n  for 1m\nend\n"
    events = [ev(0, labels={"zone": "z1"}), ev(30), ev(200, host="h2")]
    whole, _ = feed_engine(rules, events, 3600, None)
    single, _ = feed_engine(rules, events, 3600, 1)
    assert_frame_equal(single, whole)
    assert [(r["at"], r["title"]) for r in whole.iter_rows(named=True)] == [(at(60), "quiet on h1")]
