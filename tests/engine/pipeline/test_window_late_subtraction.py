"""Window values at points a late event that had not arrived yet shadows (windows._rolled).

count, rate, sum and avg come from the rolling value (for a rule that only counts, from
prefix sums: `_counted`) minus the missing events (`_subtract_late`); min, max and
percentiles from a second rolling pass over each shadow's rows without them
(`_roll_shadows`); count_distinct from each value's presence intervals (`_count_distinct`),
its runs merged with offsets or, where those could overflow, with `over`. All are checked
against the definition (DSL.md §4.1: an event is in the window at t when ts is in (t - W, t]
and it had arrived by t) computed by brute force.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from dsl.compiler import AggSpec
from engine.pipeline import windows
from engine.pipeline.engine import compile_for_engine
from engine.pipeline.windows import WindowRule, _rolled, group_hash

RULES = """
rule sub when true count() > 0 within 1m end
rule gat when true min(lat) > 0 within 1m end
rule s when true sum(lat) > 0 within 1m end
rule a when true avg(lat) > 0 within 1m end
rule r when true rate() > 0 within 1m end
rule lo when true max(lat) > 0 within 1m end
rule q when true p90(lat) > 0 within 1m end
rule m when true p50(lat) > 0 within 1m end
rule d when true count_distinct(tag) > 0 within 1m end
"""
W = 60_000_000  # µs
VALUES = [None, 1.5, 10.0, 0.1, -3.25, 1e6]  # None: no numeric value
TAGS = [None, "", "a", "b", "c", "d"]  # None and "": no value for count_distinct
RULE_IDS = ("sub", "gat", "q", "d", "r")


def _setup() -> tuple[list[WindowRule], dict[str, list[AggSpec]]]:
    compiled = compile_for_engine(RULES)
    by_id = {r.rule_id: WindowRule.of(r) for r in compiled.rules if r.kind == "window"}
    aggs = [by_id[k].spec.agg for k in ("sub", "s", "a", "r")]
    ranked = [by_id[k].spec.agg for k in ("gat", "lo", "q", "m")]
    # `sub` only subtractable aggregates; `gat` the same plus min; `q` min, max and
    # percentiles only; `d` count_distinct.
    pick = {
        "sub": aggs,
        "gat": [*aggs, by_id["gat"].spec.agg],
        "q": ranked,
        "d": [by_id["d"].spec.agg],
        "r": [by_id["sub"].spec.agg, by_id["r"].spec.agg],  # counts only: prefix sums
    }
    return [by_id["sub"], by_id["gat"], by_id["q"], by_id["d"], by_id["r"]], pick


def _stream(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for key in ("k1", "k2", "k3"):
        t = 0
        for _ in range(int(rng.integers(5, 60))):
            t += int(rng.choice([0, 1, 3, 7, 20, 45])) * 1_000_000
            ts = t
            if rng.random() < 0.3:  # arrives late, by up to 90 s
                ts = t - int(rng.choice([1, 5, 30, 59, 61, 90])) * 1_000_000
            v = VALUES[int(rng.integers(len(VALUES)))]
            tag = TAGS[int(rng.integers(len(TAGS)))]
            rows.append((key, t, ts, v, tag))
    frame = pl.DataFrame(
        rows,
        schema={
            "key": pl.String,
            "t_in": pl.Int64,
            "ts": pl.Int64,
            "vnum": pl.Float64,
            "vtext": pl.String,
        },
        orient="row",
    )
    both = pl.concat([frame.with_columns(rule=pl.lit(r)) for r in RULE_IDS])
    return both.with_columns(h=group_hash())


def _linear_quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _expected(data: pl.DataFrame, h: int, ts: int, known: int) -> tuple[float, float, float | None]:
    inside = data.filter(
        (pl.col("h") == h)
        & (pl.col("ts") > ts - W)
        & (pl.col("ts") <= ts)
        & (pl.col("t_in") <= known)
    )
    nums = inside["vnum"].drop_nulls().to_list()
    return float(inside.height), math.fsum(nums), (math.fsum(nums) / len(nums) if nums else None)


@pytest.mark.parametrize("offsets", ["lifted", "over"])
@pytest.mark.parametrize("seed", range(6))
def test_subtracted_and_gathered_values_match_the_definition(
    seed: int, offsets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if offsets == "over":  # count_distinct's runs grouped with `over`, as on a very long span
        monkeypatch.setattr(windows, "OFFSET_LIMIT", 0)
    rules, pick = _setup()
    data = _stream(seed)
    # Every instant an event arrives, every ts + W, and points seen later than their
    # position (as prev() asks: the window before, known at t).
    base = pl.concat(
        [
            data.select("h", "rule", ts="t_in", t_known="t_in"),
            data.select("h", "rule", ts=pl.col("ts") + W, t_known=pl.col("ts") + W),
            data.select("h", "rule", ts="t_in", t_known=pl.col("t_in") + 30_000_000),
        ]
    ).unique(["h", "ts", "t_known"])
    got = _rolled(rules, data, base, pick)
    assert got.height == base.height
    late_missing = 0
    for row in got.iter_rows(named=True):
        n, total, mean = _expected(data, row["h"], row["ts"], row["t_known"])
        full_n, _, _ = _expected(data, row["h"], row["ts"], 2**62)
        late_missing += full_n != n
        assert row["n"] == n, row
        inside = data.filter(
            (pl.col("h") == row["h"])
            & (pl.col("ts") > row["ts"] - W)
            & (pl.col("ts") <= row["ts"])
            & (pl.col("t_in") <= row["t_known"])
        )
        nums = inside["vnum"].drop_nulls().to_list()
        if row["rule"] == "r":
            assert (row["agg0"], row["agg1"]) == (n, n / 60), row
        if row["rule"] in ("sub", "gat"):
            assert row["agg0"] == n, row
            assert row["agg1"] == pytest.approx(total, rel=1e-12, abs=1e-9), row
            if mean is None:
                assert row["agg2"] is None, row
            else:
                assert row["agg2"] == pytest.approx(mean, rel=1e-12, abs=1e-9), row
            assert row["agg3"] == n / 60, row
        if row["rule"] == "gat":
            assert row["agg4"] == (min(nums) if nums else None), row
        if row["rule"] == "q":
            assert row["agg0"] == (min(nums) if nums else None), row
            assert row["agg1"] == (max(nums) if nums else None), row
            for slot, q in (("agg2", 0.9), ("agg3", 0.5)):
                want = _linear_quantile(nums, q)
                if want is None:
                    assert row[slot] is None, row
                else:
                    assert row[slot] == pytest.approx(want, rel=1e-12, abs=1e-9), row
        if row["rule"] == "d":
            assert row["agg0"] == len({t for t in inside["vtext"].to_list() if t}), row
    # some points must have missed a late event, or this checks nothing new
    assert late_missing > 0
