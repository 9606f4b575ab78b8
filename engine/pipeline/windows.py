"""Window rules (DSL.md §4.4): an aggregate over (t - W, t] per key, crossing a threshold.

The condition can only change where an event enters a window (its instant) or leaves it
(`ts + W`; with `prev()` also `ts + 2W`), so it is evaluated exactly at those points, with
rolling aggregates over the events of the last W. A late event (DSL.md §4.1) counts from the
instant it arrived until `ts + W`: it is in the window at t when `ts > t - W` and it had
arrived by t.

All window rules of a batch go through together: one rolling pass per distinct window width,
one episode pass for every (rule, key). Within the step, (rule, key) is a 64-bit hash `h`, so
sorts and joins work on integers. An order statistic against a constant (`p95(x) > 1400`) is
decided by counting the values on either side of the constant (cuts.py), and computed only
where the counts cannot tell or where a transition reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from dsl.compiler import AggSpec, CompiledRule, WindowSpec
from engine.pipeline.cuts import (
    CUT_COUNTS,
    FINITE,
    LARGEST,
    ROWS,
    VALUED,
    Bound,
    Cut,
    cut_counts,
    decide,
    exact_values,
    in_windows,
    quantile,
    unreachable,
)
from engine.pipeline.episodes import mark_episodes, summarize_episodes
from engine.pipeline.event_rules import STEP_OUT
from engine.pipeline.groups import GID, by_rule_key, group_ids, per_rule

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

WINDOW_EVENTS = pl.Schema(
    {
        "rule": pl.String,
        "key": pl.String,
        "t_in": pl.Int64,  # engine instant it arrived
        "ts": pl.Int64,  # its own time
        "vnum": pl.Float64,
        "vtext": pl.String,
        "seq": pl.Int64,
    }
)
WINDOW_STATE = pl.Schema(
    {
        "rule": pl.String,
        "key": pl.String,
        "active": pl.Boolean,
        "t0": pl.Int64,
        "fired": pl.Boolean,
        # the aggregate at the last point evaluated: what a `for` that ends later reports
        "agg": pl.Float64,
        "n": pl.Float64,
        "info_seq": pl.Int64,
    }
)


@dataclass(frozen=True)
class WindowRule:
    rule_id: str
    spec: WindowSpec
    hold: int  # µs
    cut: Cut | None = None  # an order statistic against a constant: decided by counting
    bound: Bound | None = None  # a constant threshold some groups' rows cannot reach

    @property
    def width(self) -> int:
        return self.spec.duration_ms * 1000

    @property
    def horizon(self) -> int:
        return self.width * (2 if self.spec.prev else 1)

    @property
    def rises_only(self) -> bool:
        """Whether the condition can turn true only where an event arrives: a row leaving
        the window can only make it false (`count() > 40`, `count_distinct(u) >= 5`,
        `max(x) > 9`, `min(x) < 3`)."""
        if self.bound is None:
            return False
        if self.bound.stat in (ROWS, VALUED):
            return True
        return self.spec.agg.name == ("max" if self.bound.stat == LARGEST else "min")

    @classmethod
    def of(cls, rule: CompiledRule) -> WindowRule:
        assert rule.window is not None
        spec = rule.window
        return cls(rule.rule_id, spec, rule.hold_ms * 1000, Cut.of(spec), Bound.of(spec))


def group_hash() -> pl.Expr:
    """(rule, key) → one UInt64; collisions would need 2^32 live groups in a batch."""
    return pl.struct("rule", "key").hash(seed=0x4B4C58)


def _by_rule(build: dict[str, pl.Expr]) -> pl.Expr:
    items = list(build.items())
    chain: Then | ChainedThen = pl.when(pl.col("rule") == items[0][0]).then(items[0][1])
    for rid, e in items[1:]:
        chain = chain.when(pl.col("rule") == rid).then(e)
    return chain


def _agg_name(agg: AggSpec) -> str:
    return f"{agg.name}_{agg.quantile}" if agg.quantile is not None else agg.name


def _rolling_exprs(aggs: dict[str, AggSpec], width: int) -> dict[str, pl.Expr]:
    """The fast path's aggregates: rolling expressions over one time axis (`axis`)."""

    def roll(expr: pl.Expr, how: str, **kw: object) -> pl.Expr:
        fn = getattr(expr, f"rolling_{how}_by")
        return fn("axis", window_size=f"{width}i", closed="right", **kw)  # type: ignore[no-any-return]

    n = roll((~pl.col("is_eval")).cast(pl.Int64), "sum").cast(pl.Float64)
    v = pl.col("vnum")
    exprs: dict[str, pl.Expr] = {"n": n}
    if any(a.name in ("sum", "avg") for a in aggs.values()):
        # what a sum or mean corrected by _subtract_late starts from
        exprs[NUMERIC] = roll(v.is_not_null().cast(pl.Int64), "sum").cast(pl.Float64)
        exprs[SUM] = roll(v, "sum")
    for name, a in aggs.items():
        if a.name == "count":
            exprs[name] = n
        elif a.name == "rate":
            exprs[name] = n / (width / 1_000_000)
        elif a.name in ("sum", "min", "max"):
            exprs[name] = roll(v, a.name)
        elif a.name == "avg":
            exprs[name] = roll(v, "mean")
        else:
            exprs[name] = roll(v, "quantile", quantile=a.quantile, interpolation="linear")
    return exprs


# Aggregates a missing late event can be subtracted from (_subtract_late), and the helper
# columns of the rolling pass they need.
SUBTRACTABLE = frozenset({"count", "rate", "sum", "avg"})
NUMERIC = "__numeric"
SUM = "__sum"


def _subtract_late(
    rolled: pl.DataFrame,
    late: pl.DataFrame,
    which: pl.Expr,
    width: int | pl.Expr,
    aggs: dict[str, AggSpec],
    counts: Sequence[str] = (),
) -> pl.DataFrame:
    """Take the late events that had not arrived by a point out of its rolling aggregates.

    `rolled` holds the rolling values at each point (pid, axis, t_known, n, aggregates,
    `counts`), sorted by axis; `late` the late events (axis, t_in, ts, vnum, `counts`), sorted
    by axis; `which` selects the points to correct (rules whose aggregates are all in
    SUBTRACTABLE, or that only count). A late
    event at `axis` is in the rolling window of the points at [axis, axis + W) and missing
    from those whose instant is before its arrival (t_in > t_known); as t_known >= the
    point's position, those lie before axis + (t_in - ts). Counts come out exact; a sum or
    mean may differ from one summed afresh in the last bits. `width` is the window's, or
    `pl.col("width")` where both frames hold each row's (_counted).
    """
    pts = rolled.filter(which).select("pid", "axis", "t_known")
    if pts.height == 0 or late.height == 0:
        return rolled
    end = late["axis"] + late.select(pl.min_horizontal(width, pl.col("t_in") - pl.col("ts")))[
        :, 0
    ].clip(0)
    reach = late.select(
        "t_in",
        "vnum",
        *counts,
        first=pts["axis"].search_sorted(late["axis"], side="left"),
        last=pts["axis"].search_sorted(end, side="left"),
    ).filter(pl.col("last") > pl.col("first"))
    missing = reach.select(
        "t_in", "vnum", *counts, i=pl.int_ranges("first", "last", dtype=pl.UInt32)
    )
    missing = missing.explode("i")
    missing = (
        missing.with_columns(pts.select("pid", "t_known")[missing["i"]])
        .filter(pl.col("t_in") > pl.col("t_known"))
        .group_by("pid")
        .agg(
            late_n=pl.len().cast(pl.Float64),
            late_num=pl.col("vnum").is_not_null().sum().cast(pl.Float64),
            late_sum=pl.col("vnum").sum(),
            **{f"late{c}": pl.col(c).sum() for c in counts},
        )
    )
    if missing.height == 0:
        return rolled
    helpers = [c for c in (NUMERIC, SUM) if c in rolled.columns]
    per_row = ["width"] if isinstance(width, pl.Expr) else []
    fixed = rolled.select("pid", "n", *helpers, *counts, *per_row).join(
        missing, on="pid", how="inner"
    )
    n = pl.col("n") - pl.col("late_n")
    exprs: dict[str, pl.Expr] = {"n": n, **{c: pl.col(c) - pl.col(f"late{c}") for c in counts}}
    for name, a in aggs.items():
        if a.name == "count":
            exprs[name] = n
        elif a.name == "rate":
            exprs[name] = n / (width / 1_000_000)
        elif a.name in ("sum", "avg"):
            num = pl.col(NUMERIC) - pl.col("late_num")
            total = pl.col(SUM) - pl.col("late_sum")
            if a.name == "sum":
                exprs[name] = pl.when(num > 0).then(total).otherwise(0.0)
            else:
                exprs[name] = pl.when(num > 0).then(total / num).otherwise(None)
    # only the columns this width computes: aggregates of other kinds keep their values
    fixed = fixed.select(
        "pid", **{k: e for k, e in exprs.items() if k == "n" or k in aggs or k in counts}
    )
    return rolled.update(fixed, on="pid", include_nulls=True)


def _arrived_from(offset: int) -> pl.Expr:
    """Where on the axis an event starts counting for points seen `offset` after their position.

    An event is in the window of a point at axis a (instant a + offset, in axis units) when
    its position is in (a - W, a] and it had arrived by the point's instant: from
    axis + max(0, t_in - ts - offset) until axis + W.
    """
    return pl.col("axis") + (pl.col("t_in") - pl.col("ts") - offset).clip(lower_bound=0)


def _offsets(pts: pl.DataFrame) -> list[int]:
    """The distinct gaps between a point's instant and its position (0, or W for `prev()`)."""
    gaps = pts.select(d=pl.col("t_known") - pl.col("ts"))["d"].unique().sort()
    return [int(d) for d in gaps]


def _count_distinct(pts: pl.DataFrame, rows: pl.DataFrame, width: int | pl.Expr) -> pl.DataFrame:
    """count_distinct at each point, exactly, without gathering any window.

    Each event with a value is present at the points of [start, axis + W) (`_arrived_from`).
    The presence intervals of one value in one group are merged; a value then counts +1 where
    a merged interval starts and -1 where it ends, so the number of distinct values at a point
    is the starts at or before it minus the ends at or before it. Groups lie apart on the axis,
    so the counts of other groups cancel out.

    `pts` (pid, axis, ts, t_known) and `rows` (h, axis, t_in, ts, vtext) are sorted by axis;
    `width` is the window's, or `pl.col("width")` where `rows` holds each row's (_counted).
    """
    parts = [pl.DataFrame(schema={"pid": pl.UInt32, "count_distinct": pl.Float64})]
    valued = rows.filter(pl.col("vtext").is_not_null() & (pl.col("vtext") != ""))
    for offset in _offsets(pts):
        at = pts.filter((pl.col("t_known") - pl.col("ts")) == offset)
        spans = (
            valued.select("h", "vtext", start=_arrived_from(offset), end=pl.col("axis") + width)
            .filter(pl.col("start") < pl.col("end"))
            .sort("h", "vtext", "start")
        )
        merged = (
            spans.with_columns(run=_new_run(spans).cum_sum())
            .group_by("run")
            .agg(pl.col("start").first(), pl.col("end").max())
        )
        started = merged["start"].sort().search_sorted(at["axis"], side="right")
        ended = merged["end"].sort().search_sorted(at["axis"], side="right")
        parts.append(
            at.select(
                "pid",
                count_distinct=(started.cast(pl.Int64) - ended.cast(pl.Int64)).cast(pl.Float64),
            )
        )
    return pl.concat(parts)


# Above this, _new_run's offsets could overflow 64 bits and it groups with `over` instead.
OFFSET_LIMIT = 2**62


def _new_run(spans: pl.DataFrame) -> pl.Expr:
    """Whether each span starts a merged run: it starts after every earlier span of its
    (h, vtext) group ended. `spans` (h, vtext, start, end) are sorted by those.

    The running maximum of the ends restarts at each group: each group's ends, measured from
    its first start, are lifted above every earlier group's by an offset, so one cum_max over
    the frame serves all groups (an `over` on h and vtext hashed the strings: 8 of 9 ms).
    """
    first = (pl.col("h") != pl.col("h").shift(1)) | (pl.col("vtext") != pl.col("vtext").shift(1))
    first = first.fill_null(True)
    base = pl.when(first).then(pl.col("start")).forward_fill()
    groups, longest = spans.select(first.cast(pl.Int64).sum(), (pl.col("end") - base).max()).row(0)
    if longest is None:
        return pl.lit(True)
    span = int(longest) + 1
    if span * (int(groups) + 1) >= OFFSET_LIMIT:
        reach = pl.col("end").cum_max().shift(1).over("h", "vtext")
        return reach.is_null() | (pl.col("start") > reach)
    offset = first.cast(pl.Int64).cum_sum() * span
    before = (pl.col("end") - base + offset).cum_max().shift(1) - offset + base
    return first | (pl.col("start") > before)


def _roll_shadows(
    pts: pl.DataFrame,
    rows: pl.DataFrame,
    late: pl.DataFrame,
    width: int,
    aggs: dict[str, AggSpec],
) -> pl.DataFrame:
    """min, max and percentiles at the points a missing late event shadows, exactly.

    A late event is missing from the points of its group in [axis, axis + min(W, t_in - ts -
    offset)), its shadow. Consecutive points under the same set of shadows form a segment; the
    events its points miss are those of its first point, so each segment's rows, (first - W,
    last], are gathered once, the missing ones dropped, and one rolling pass over all segments
    laid end to end gives every point its value: the same rolling computation as the points
    outside any shadow.

    `pts` (pid, axis, ts, t_known) and `rows` (axis, t_in, ts, vnum) are sorted by axis, `late`
    are the rows with t_in != ts. Returns pid and the aggregates of the shadowed points.
    """
    parts = [pl.DataFrame(schema={"pid": pl.UInt32, **dict.fromkeys(aggs, pl.Float64)})]
    for offset in _offsets(pts):
        shade = late.select(
            start="axis",
            end=pl.col("axis") + pl.min_horizontal(width, pl.col("t_in") - pl.col("ts") - offset),
        ).filter(pl.col("end") > pl.col("start"))
        if shade.height == 0:
            continue
        at = pts.filter((pl.col("t_known") - pl.col("ts")) == offset)
        # The shadows over a point are those started and not ended by it; two points of a
        # segment have the same counts of both.
        at = (
            at.select(
                "pid",
                "axis",
                "t_known",
                started=shade["start"].sort().search_sorted(at["axis"], side="right"),
                ended=shade["end"].sort().search_sorted(at["axis"], side="right"),
            )
            .filter(pl.col("started") > pl.col("ended"))
            .with_columns(seg=group_ids("started", "ended"))
        )
        if at.height == 0:
            continue
        segs = at.group_by("seg", maintain_order=True).agg(
            first=pl.col("axis").first(),
            last=pl.col("axis").last(),
            known=pl.col("t_known").first(),
        )
        axis = rows["axis"]
        segs = segs.with_columns(
            lo=axis.search_sorted(segs["first"] - width, side="right"),
            hi=axis.search_sorted(segs["last"], side="right"),
        )
        taken = (
            segs.select("seg", "first", "known", i=pl.int_ranges("lo", "hi", dtype=pl.UInt32))
            .explode("i")
            .drop_nulls("i")
        )
        taken = taken.with_columns(rows.select("axis", "t_in", "vnum")[taken["i"]]).filter(
            (pl.col("axis") > pl.col("first")) | (pl.col("t_in") <= pl.col("known"))
        )
        # Segment j is shifted by j * (W + 1): its rows and points stay clear of its neighbours'.
        frame = (
            pl.concat(
                [
                    taken.select(
                        "seg",
                        "axis",
                        "vnum",
                        pid=pl.lit(None, dtype=pl.UInt32),
                        is_eval=pl.lit(False),
                    ),
                    at.select(
                        "seg",
                        "axis",
                        vnum=pl.lit(None, dtype=pl.Float64),
                        pid="pid",
                        is_eval=pl.lit(True),
                    ),
                ]
            )
            .with_columns(axis=pl.col("axis") + pl.col("seg") * (width + 1))
            .sort("axis", "is_eval")
        )
        exprs = {k: e for k, e in _rolling_exprs(aggs, width).items() if k in aggs}
        parts.append(frame.with_columns(**exprs).filter("is_eval").select("pid", *aggs))
    return pl.concat(parts)


def _mend_quantiles(
    rolled: pl.DataFrame, rows: pl.DataFrame, width: int, ranks: dict[str, float]
) -> pl.DataFrame:
    """Percentiles (`ranks`: column → rank) that rolled to NaN, computed again from their
    windows (cuts.quantile).

    No NaN enters a window (a field's NaN is no value), so a NaN percentile comes from an
    infinity: Polars' rolling kernel interpolates `-inf + f * (x - -inf)`, and even two equal
    infinities, to NaN. Those few points gather their windows (cuts.in_windows), as a cut
    rule's exact values do.
    `rolled` (pid, axis, t_known, aggregates) and `rows` (axis, t_in, vnum) are sorted by axis.
    """
    bad = rolled.filter(pl.any_horizontal(pl.col(k).is_nan() for k in ranks))
    if bad.height == 0:
        return rolled
    values = [quantile(pl.col("vnum"), rank).alias(k) for k, rank in ranks.items()]
    fixed = in_windows(bad.with_columns(width=pl.lit(width, dtype=pl.Int64)), rows, values)
    return rolled.update(fixed, on="pid", include_nulls=True)


# Aggregates that count a window's events: _counted serves them from prefix sums, and
# count_distinct from the presence intervals of its values (_count_distinct).
COUNTED = frozenset({"count", "rate", "count_distinct"})


def _counted(
    rules: Sequence[WindowRule],
    data: pl.DataFrame,
    pts: pl.DataFrame,
    pick: dict[str, list[AggSpec]],
    summed: tuple[str, ...],
) -> pl.DataFrame:
    """`_rolled` for rules whose aggregates only count (COUNTED, or the window sums of
    `summed`, the counting cut rules'), every width at once.

    Rows are sorted by group and time, groups laid end to end on one axis; the events in a
    point's window (p - W, p] lie between two searches of that axis and a window sum is the
    difference of two prefix sums, exact in integers. The points take no place among the
    rows, so nothing rolls and W can differ from point to point. Late events that had not
    arrived by a point are taken out as in the rolling passes (`_subtract_late`), and
    `count_distinct` is counted on the same axis from its values' presence intervals.
    """
    widths = {r.rule_id: r.width for r in rules}
    row_width = per_rule(widths, pl.Int64())
    ts = pl.concat([data["ts"], pts["ts"]])
    base = int(ts.min())  # type: ignore[arg-type]
    gap = int(ts.max()) - base + max(widths.values()) + 1  # type: ignore[arg-type]
    rows = (
        data.select("h", "rule", "ts", "t_in", "vnum", "vtext", *summed, width=row_width)
        .with_columns(pl.col(c).fill_null(0) for c in summed)
        .sort("h", "ts")
        .with_columns(dense=group_ids("h"))
        .with_columns(axis=(pl.col("ts") - base) + pl.col("dense") * gap)
    )
    rolled = (
        pts.join(rows.group_by("h").agg(pl.col("dense").first()), on="h", how="left")
        .with_columns(axis=(pl.col("ts") - base) + pl.col("dense") * gap, width=row_width)
        .drop("dense")
        .sort("axis")
        .with_row_index("pid")
    )
    axis = rows["axis"]
    upto = axis.search_sorted(rolled["axis"], side="right").cast(pl.Int64)
    since = axis.search_sorted(rolled["axis"] - rolled["width"], side="right").cast(pl.Int64)
    sums = {"n": (upto - since).cast(pl.Float64)}
    for c in summed:
        prefix = pl.concat([pl.Series([0], dtype=pl.Int64), rows[c].cum_sum()])
        sums[c] = prefix.gather(upto) - prefix.gather(since)
    rolled = rolled.with_columns(pl.Series(name, v) for name, v in sums.items())
    aggs = {_agg_name(a): a for r in rules for a in pick[r.rule_id]}
    n = pl.col("n")
    rate = n / (pl.col("width") / 1_000_000)
    exprs = {
        k: n if a.name == "count" else rate for k, a in aggs.items() if a.name != "count_distinct"
    }
    rolled = rolled.with_columns(**exprs)
    late = rows.filter(pl.col("t_in") != pl.col("ts")).select(
        "axis", "t_in", "ts", "vnum", "width", *summed
    )
    if late.height:
        shadow = late.select(
            start="axis",
            end=pl.col("axis") + pl.min_horizontal("width", pl.col("t_in") - pl.col("ts")),
        ).with_columns(end=pl.col("end").cum_max())
        at = shadow["start"].search_sorted(rolled["axis"], side="right").cast(pl.Int64) - 1
        covers = shadow["end"].gather(at.clip(0)) > rolled["axis"]
        shadowed = pl.lit(pl.Series((at >= 0) & covers))
        rolled = _subtract_late(rolled, late, shadowed, pl.col("width"), aggs, summed)
    distinct = [
        r.rule_id for r in rules if any(a.name == "count_distinct" for a in pick[r.rule_id])
    ]
    if distinct:
        counted = _count_distinct(
            rolled.filter(pl.col("rule").is_in(distinct)),
            rows.filter(pl.col("rule").is_in(distinct)),
            pl.col("width"),
        )
        rolled = rolled.with_columns(count_distinct=pl.lit(None, dtype=pl.Float64)).update(
            counted, on="pid", include_nulls=True
        )
    return rolled.select("h", "rule", "ts", "t_known", "n", *summed, **_slots(rules, pick))


def _slots(rules: Sequence[WindowRule], pick: dict[str, list[AggSpec]]) -> dict[str, pl.Expr]:
    """agg0, agg1, ...: each rule's picked aggregates in order, from their columns."""
    ids = [r.rule_id for r in rules if r.rule_id in pick]
    slots = max((len(pick[rid]) for rid in ids), default=0)
    return {
        f"agg{slot}": _by_rule(
            {rid: pl.col(_agg_name(pick[rid][slot])) for rid in ids if slot < len(pick[rid])}
        )
        for slot in range(slots)
    }


def _rolled(
    rules: Sequence[WindowRule],
    data: pl.DataFrame,
    points: pl.DataFrame,
    pick: dict[str, list[AggSpec]],
    counts: dict[str, pl.Expr] | None = None,
) -> pl.DataFrame:
    """Aggregates over (ts - W, ts] at each point (h, rule, ts, t_known), W per rule.

    `pick[rule]` lists the aggregates each rule needs, returned as agg0, agg1, ... in order,
    with `n` (events in the window). The rules that pick none get instead the window sums of
    `counts`, columns computed from their rows (cuts.cut_counts).

    Rules that only count (COUNTED, count_distinct included, and the cut rules' sums) are
    served by one pass of prefix sums whatever their width (`_counted`). For the others, per
    width and set of aggregates, every (rule, key) group is laid end to end on one axis, far
    enough apart that no window reaches across, and one rolling pass serves every group.
    Rolling over `ts` counts every event whose `ts` is in the window, which is exact unless a
    late event had not arrived yet by the point's instant (`t_in > t_known`). At those points
    counts, sums and means subtract the missing events (`_subtract_late`), and min, max and
    percentiles roll again over each shadow's rows without them (`_roll_shadows`); a
    percentile that rolled to NaN over an infinity is computed from its window
    (`_mend_quantiles`). `count_distinct` has no rolling form and comes from the presence
    intervals of each value (`_count_distinct`). Windows are gathered only for those NaNs.
    """
    counting = [
        r for r in rules if r.rule_id in pick and all(a.name in COUNTED for a in pick[r.rule_id])
    ]
    # One pass per width and set of aggregates: a percentile rolls only over the rows of the
    # rules that ask for it, not over every row of its width.
    units: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    for r in rules:
        if r.rule_id in pick and r not in counting:
            kinds = tuple(sorted({_agg_name(a) for a in pick[r.rule_id]}))
            units.setdefault((r.width, kinds), []).append(r.rule_id)
    order = sorted(units.items())
    # Each frame split by unit in one pass (rows keep their order), not filtered per unit.
    unit_of = {rid: i for i, (_, ids) in enumerate(order) for rid in ids}
    unit_of |= {r.rule_id: len(order) for r in counting}

    def split(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
        parts = frame.with_columns(__unit=per_rule(unit_of, pl.Int64())).partition_by(
            "__unit", maintain_order=True, include_key=False, as_dict=True
        )
        return {int(k[0]): v for k, v in parts.items() if k[0] is not None}

    data_of, points_of = split(data), split(points)
    outs = []
    for i, ((width, _), ids) in enumerate(order):
        pts = points_of.get(i)
        if pts is None or pts.height == 0:
            continue
        frame = pl.concat(
            [
                data_of.get(i, data.clear()).select(
                    "h",
                    "rule",
                    "ts",
                    "t_in",
                    "vnum",
                    "vtext",
                    is_eval=pl.lit(False),
                    t_known=pl.lit(None, dtype=pl.Int64),
                ),
                pts.select(
                    "h",
                    "rule",
                    "ts",
                    t_in="ts",
                    vnum=pl.lit(None, dtype=pl.Float64),
                    vtext=pl.lit(None, dtype=pl.String),
                    is_eval=pl.lit(True),
                    t_known="t_known",
                ),
            ],
            how="vertical_relaxed",
        ).sort("h", "ts", "is_eval")
        distinct: dict[str, AggSpec] = {}
        for rid in ids:
            for a in pick[rid]:
                distinct.setdefault(_agg_name(a), a)
        rolling = {k: a for k, a in distinct.items() if a.name != "count_distinct"}
        lo, hi = frame.select(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi")).row(0)
        base: int = lo
        gap = int(hi) - base + width + 1
        dense = group_ids("h")
        frame = frame.with_columns(axis=(pl.col("ts") - base) + dense * gap)
        rolled = (
            frame.with_columns(**_rolling_exprs(rolling, width))
            .with_columns(
                [pl.lit(None, dtype=pl.Float64).alias(k) for k in distinct if k not in rolling]
            )
            .filter("is_eval")
            .with_row_index("pid")
        )
        rows = frame.filter(~pl.col("is_eval")).select(
            "h", "rule", "axis", "t_in", "ts", "vnum", "vtext"
        )
        late = rows.filter(pl.col("t_in") != pl.col("ts")).select("axis", "t_in", "ts", "vnum")
        if late.height:
            # A late event is missing from the points of its group at [ts, t_in) that its
            # window reaches: the axis interval [axis, axis + min(W, t_in - ts)). Its count,
            # and its value from sums and means, are taken out of those points' rolling
            # values (a few more points than needed are looked at: those whose instant is
            # later than their position, for `prev()`, may have seen it arrive).
            shadow = late.select(
                start="axis",
                end=pl.col("axis") + pl.min_horizontal(width, pl.col("t_in") - pl.col("ts")),
            ).with_columns(end=pl.col("end").cum_max())
            at = shadow["start"].search_sorted(rolled["axis"], side="right").cast(pl.Int64) - 1
            covers = shadow["end"].gather(at.clip(0)) > rolled["axis"]
            shadowed = pl.lit(pl.Series((at >= 0) & covers))
            sub_aggs = {k: a for k, a in rolling.items() if a.name in SUBTRACTABLE}
            rolled = _subtract_late(rolled, late, shadowed, width, sub_aggs)
            # min, max and percentiles cannot subtract: recomputed over what had arrived.
            ranked = {k: a for k, a in rolling.items() if a.name not in SUBTRACTABLE}
            users = [rid for rid in ids if any(_agg_name(a) in ranked for a in pick[rid])]
            if users:
                fixed = _roll_shadows(
                    rolled.filter(pl.col("rule").is_in(users)), rows, late, width, ranked
                )
                rolled = rolled.update(fixed, on="pid", include_nulls=True)
        exact_rules = [rid for rid in ids if any(a.name == "count_distinct" for a in pick[rid])]
        if exact_rules:
            counted = _count_distinct(
                rolled.filter(pl.col("rule").is_in(exact_rules)),
                rows.filter(pl.col("rule").is_in(exact_rules)),
                width,
            )
            rolled = rolled.update(counted, on="pid", include_nulls=True)
        quantiles = {k: a.quantile for k, a in rolling.items() if a.quantile is not None}
        if quantiles:
            rolled = _mend_quantiles(rolled, rows, width, quantiles)
        rolled = rolled.drop(NUMERIC, SUM, strict=False)
        unit = [r for r in rules if r.rule_id in ids]
        outs.append(rolled.select("h", "rule", "ts", "t_known", "n", **_slots(unit, pick)))
    pts = points_of.get(len(order))
    if counting and pts is not None:
        rows = data_of[len(order)]
        if counts:
            rows = rows.with_columns(**counts)
        outs.append(_counted(counting, rows, pts, pick, tuple(counts or ())))
    if not outs:
        return points.with_columns(
            n=pl.lit(None, dtype=pl.Float64), agg0=pl.lit(None, dtype=pl.Float64)
        )
    return pl.concat(outs, how="diagonal_relaxed")


def step_window_rules(
    rules: Sequence[WindowRule],
    fresh: pl.DataFrame,
    events: pl.DataFrame,
    state: pl.DataFrame,
    lo: int,
    hi: int,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.Series]:
    """All window rules over [lo, hi): transitions, the events to keep, the condition state,
    and the `seq` of each kept group's latest event (its context, which the engine keeps).

    `fresh` are this batch's matching firing events (WINDOW_EVENTS, t_in = engine instant);
    `events` and `state` are what the rules carried (WINDOW_EVENTS, WINDOW_STATE).
    """
    empty = (
        pl.DataFrame(schema=STEP_OUT),
        pl.DataFrame(schema=WINDOW_EVENTS),
        pl.DataFrame(schema=WINDOW_STATE),
        pl.Series("seq", [], dtype=pl.Int64),
    )
    if not rules:
        return empty
    ids = [r.rule_id for r in rules]
    width = per_rule({r.rule_id: r.width for r in rules}, pl.Int64())
    horizon = per_rule({r.rule_id: r.horizon for r in rules}, pl.Int64())
    fresh = fresh.filter(pl.col("rule").is_in(ids) & (pl.col("ts") > pl.col("t_in") - horizon))
    data = pl.concat([events.filter(pl.col("rule").is_in(ids)), fresh], how="vertical_relaxed")
    state = state.filter(pl.col("rule").is_in(ids))
    if data.height == 0 and state.height == 0:
        return empty
    data = data.with_columns(h=group_hash(), width=width)
    state = state.with_columns(h=group_hash())
    cuts = {r.rule_id: r.cut for r in rules if r.cut is not None}
    prev_ids = [r.rule_id for r in rules if r.spec.prev]
    # The points where a condition can change: where a row arrives, and where it leaves its
    # window (and with prev() the window before).
    arrives = pl.col("t_in").alias("t")
    leaves = (pl.col("ts") + pl.col("width")).alias("t")
    leaves_prev = (pl.col("ts") + 2 * pl.col("width")).alias("t")
    is_prev = pl.col("rule").is_in(prev_ids)

    def within(t: pl.Expr) -> pl.Expr:
        return (t >= lo) & (t < hi)

    # Only the groups with a point in this range are evaluated: a small batch, or a tick of
    # the clock, has points in a few of the groups whose rows are carried.
    touched = data.filter(within(arrives) | within(leaves) | (is_prev & within(leaves_prev)))
    # A group of a rule that can only turn true where an event arrives (`rises_only`), false
    # when the range begins (it carries no state) and with no arrival in the range, has only
    # rows leaving its window: it stays false (a clock tick, with no arrival at all, skips
    # every such group of those rules).
    rising = [r.rule_id for r in rules if r.rises_only]
    if rising:
        arrived = touched.filter(within(arrives))["h"]
        stays_false = touched.filter(
            pl.col("rule").is_in(rising)
            & ~pl.col("h").is_in(arrived.implode())
            & ~pl.col("h").is_in(state["h"].implode())
        )["h"]
        touched = touched.filter(~pl.col("h").is_in(stays_false.implode()))
    evaluated = data.filter(pl.col("h").is_in(touched["h"].unique().implode()))
    # A group whose rows cannot meet its condition in any window (`count() > 40` over 12
    # rows), and that carries no alert, is false at every point: it gets none evaluated.
    bounds = {r.rule_id: r.bound for r in rules if r.bound is not None}
    if bounds:
        dead = unreachable(bounds, evaluated)
        if dead.len():
            skip = dead.filter(~dead.is_in(state["h"].implode()))
            evaluated = evaluated.filter(~pl.col("h").is_in(skip.implode()))
    points = pl.concat(
        [
            evaluated.filter(within(arrives)).select("h", "rule", "key", arrives),
            evaluated.filter(within(leaves)).select("h", "rule", "key", leaves),
            evaluated.filter(is_prev & within(leaves_prev)).select("h", "rule", "key", leaves_prev),
        ]
    ).unique(["h", "t"])
    if points.height:
        # With prev(), the window before each point, (t - 2W, t - W], known at t: a point at
        # t - W seen at t, in the same rolling pass (slots agg1, ... of the rule).
        prev_rules = [r for r in rules if r.spec.prev]
        shifted = points.filter(pl.col("rule").is_in(prev_ids)).select(
            "h",
            "rule",
            ts=pl.col("t") - per_rule({r.rule_id: r.width for r in prev_rules}, pl.Int64()),
            t_known="t",
        )
        rolled = _rolled(
            rules,
            evaluated,
            pl.concat([points.select("h", "rule", ts="t", t_known="t"), shifted]),
            {r.rule_id: [] if r.rule_id in cuts else [r.spec.agg, *r.spec.prev] for r in rules},
            cut_counts(cuts) if cuts else None,
        )
        if "agg0" not in rolled.columns:  # every rule is decided by counting
            rolled = rolled.with_columns(agg0=pl.lit(None, dtype=pl.Float64))
        counts = [c for c in CUT_COUNTS if c in rolled.columns]
        seen_later = pl.col("ts") < pl.col("t_known")  # only the shifted points
        values = rolled.filter(~seen_later).select("h", "rule", *counts, t="ts", agg="agg0", n="n")
        if prev_rules:
            slots = max(len(r.spec.prev) for r in prev_rules)
            slot = [f"agg{i + 1}" for i in range(slots)]
            before = rolled.filter(seen_later).select(
                "h",
                t="t_known",
                **{
                    f"__prev{i}": pl.col(s) if s in rolled.columns else pl.lit(None, pl.Float64)
                    for i, s in enumerate(slot)
                },
            )
            values = values.join(before, on=["h", "t"], how="left")
        values = _conditions(rules, cuts, evaluated, values)
    else:
        values = pl.DataFrame(
            schema={
                "h": pl.UInt64,
                "rule": pl.String,
                "t": pl.Int64,
                "agg": pl.Float64,
                "n": pl.Float64,
                "cond": pl.Boolean,
            }
        )

    hold = per_rule({r.rule_id: r.hold for r in rules}, pl.Int64())
    # Only the groups whose condition holds at some point, or that carry an open alert, can
    # have an episode: most points of a pass are false in groups that never fire.
    live = pl.concat([values.filter("cond")["h"], state["h"]])
    rows = (
        pl.concat(
            [
                state.select(
                    "h",
                    t=pl.lit(lo - 1, dtype=pl.Int64),
                    active="active",
                    is_state=pl.lit(True),
                    st_t0="t0",
                    st_fired="fired",
                    rule="rule",
                    ord=pl.lit(-1, dtype=pl.Int64),
                ),
                values.filter(pl.col("h").is_in(live.unique().implode())).select(
                    "h",
                    "t",
                    active="cond",
                    is_state=pl.lit(False),
                    st_t0=pl.lit(None, dtype=pl.Int64),
                    st_fired=pl.lit(None, dtype=pl.Boolean),
                    rule="rule",
                    ord=pl.lit(0, dtype=pl.Int64),
                ),
            ],
            how="vertical_relaxed",
        )
        .with_columns(hold=hold)
        .sort("h", "t")
        .with_columns(gid=group_ids("h"))
    )
    rows = mark_episodes(rows)
    eps = summarize_episodes(rows, hi).join(
        rows.group_by(GID).agg(pl.col("h").first()), on=GID, how="left"
    )
    names = (
        pl.concat([data.select("h", "rule", "key"), state.select("h", "rule", "key")])
        .filter(pl.col("h").is_in(eps["h"].implode()))
        .unique("h")
    )
    # The aggregates transitions and carried alerts report, and for carried alerts the last
    # one before this range.
    by_point = pl.concat(
        [
            state.select(
                "h",
                t=pl.lit(lo - 1, dtype=pl.Int64),
                agg="agg",
                n="n",
                info_seq="info_seq",
            ),
            _reported(cuts, rules, data, values, eps),
        ],
        how="vertical_relaxed",
    )
    out = _transitions(eps, by_point).join(names, on="h", how="left")
    # An event leaves the last window at ts + W (ts + 2W with prev()); that point may be `hi`
    # itself, which the next range evaluates.
    reach = pl.col("width") * pl.when(pl.col("rule").is_in(prev_ids)).then(2).otherwise(1)
    kept = pl.col("ts") + reach >= hi
    keep = _with_latest_arrivals(data.filter(kept), data.filter(~kept), eps.filter("is_open")["h"])
    last_point = by_point.sort("h", "t").unique("h", keep="last").drop("t")
    carried = (
        eps.filter("is_open")
        .join(names, on="h", how="left")
        .join(last_point, on="h", how="left")
        .select(
            "rule",
            "key",
            "agg",
            "n",
            "info_seq",
            active=pl.lit(True),
            t0="t0",
            fired=pl.col("fired_before") | pl.col("fires"),
        )
    )
    return (
        out.select(list(STEP_OUT)).cast(STEP_OUT),
        keep.select(list(WINDOW_EVENTS)),
        by_rule_key(carried.select(list(WINDOW_STATE))),
        keep.group_by("h").agg(pl.col("seq").max())["seq"],
    )


def _with_latest_arrivals(
    keep: pl.DataFrame, dropped: pl.DataFrame, open_alerts: pl.Series
) -> pl.DataFrame:
    """The kept window rows, and each live group's latest arrival where it left every window.

    A point's context is the latest event that had arrived by it (`_reported`), which can be
    a late event whose window ended before a later range: dropped with it, the later range
    would report an older event than one pass over the whole stream does. A group that keeps
    rows or an open alert keeps that row too; it lies before every later window, so no
    aggregate counts it, and it goes when the group's last row does.
    """
    if dropped.height == 0:
        return keep
    latest = dropped.sort("seq").unique("h", keep="last", maintain_order=True)
    # Only the kept rows of those groups are looked at, not every group's.
    kept = keep.filter(pl.col("h").is_in(latest["h"].implode()))
    live = pl.concat([kept["h"], open_alerts]).unique().implode()
    latest = (
        latest.filter(pl.col("h").is_in(live))
        .join(kept.group_by("h").agg(kept_seq=pl.col("seq").max()), on="h", how="left")
        .filter(pl.col("kept_seq").is_null() | (pl.col("seq") > pl.col("kept_seq")))
    )
    return pl.concat([keep, latest.select(keep.columns)])


def _conditions(
    rules: Sequence[WindowRule], cuts: dict[str, Cut], data: pl.DataFrame, values: pl.DataFrame
) -> pl.DataFrame:
    """`cond` at each point: the rule's condition over `agg`, or for a cut rule over the
    window counts, and where those cannot tell over its order statistic, computed here."""

    def condition(ids: Sequence[str]) -> pl.Expr:
        by_id = {r.rule_id: r for r in rules}
        return _by_rule({rid: by_id[rid].spec.condition(pl.col("agg")) for rid in ids})

    columns = [c for c in values.columns if c not in CUT_COUNTS]
    if FINITE not in values.columns:  # no cut rule has a point in this range
        return values.with_columns(cond=condition([r.rule_id for r in rules]).fill_null(False))
    counted = pl.col("rule").is_in(list(cuts))
    cut, other = decide(values.filter(counted), cuts), values.filter(~counted)
    unsure = cut.filter("unsure")
    if unsure.height:
        exact = _exact(cuts, rules, data, unsure.select("h", "rule", "t"))
        unsure = unsure.update(exact, on=["h", "t"]).with_columns(
            cond=condition(list(cuts)).fill_null(False)
        )
        cut = pl.concat([cut.filter(~pl.col("unsure")), unsure])
    parts = [cut.select(*columns, "cond")]
    if other.height:
        rest = [r.rule_id for r in rules if r.rule_id not in cuts]
        parts.append(other.select(*columns, cond=condition(rest).fill_null(False)))
    return pl.concat(parts)


def _exact(
    cuts: dict[str, Cut], rules: Sequence[WindowRule], data: pl.DataFrame, points: pl.DataFrame
) -> pl.DataFrame:
    widths = {r.rule_id: r.width for r in rules if r.rule_id in cuts}
    return exact_values(cuts, widths, data, points)


def _reported(
    cuts: dict[str, Cut],
    rules: Sequence[WindowRule],
    data: pl.DataFrame,
    values: pl.DataFrame,
    eps: pl.DataFrame,
) -> pl.DataFrame:
    """The points whose aggregate is reported (h, t, agg, n, info_seq): where an alert fires
    (for a held fire, the last point before it), where it resolves, and the last point of an
    alert still open, which the carried state keeps; as `_transitions` and the carried state
    read them. Only these get their context, the latest event that had arrived by them, and
    for a cut rule its order statistic: a few hundred of a pass's hundreds of thousands.
    """
    fires = eps.filter("fires")
    held = fires.filter(pl.col("hold") > 0).select("h", at="fire_at")
    open_ = eps.filter("is_open").select("h")
    # The groups whose last point or the point before a held fire is read.
    groups = pl.concat([held["h"], open_["h"]]).unique().implode()
    keys = values.filter(pl.col("h").is_in(groups)).select("h", "t")
    before_fire = _point_before(held, keys)
    last = open_.join(keys.group_by("h").agg(pl.col("t").max()), on="h")
    read = pl.concat(
        [
            fires.filter(pl.col("hold") == 0).select("h", t="fire_at"),
            before_fire.select("h", "t"),
            eps.filter("resolves").select("h", t="te"),
            last.select("h", "t"),
        ]
    ).drop_nulls()
    points = values.filter(pl.col("h").is_in(read["h"].unique().implode())).join(
        read, on=["h", "t"], how="semi"
    )
    arrived = (
        data.filter(pl.col("h").is_in(points["h"].unique().implode()))
        .select("h", t="t_in", info_seq="seq")
        .sort("h", "t", "info_seq")
    )
    points = points.sort("h", "t").join_asof(
        arrived, on="t", by="h", strategy="backward", check_sortedness=False
    )
    missing = points.filter(pl.col("rule").is_in(list(cuts)) & pl.col("agg").is_null())
    if missing.height:
        exact = _exact(cuts, rules, data, missing.select("h", "rule", "t"))
        points = points.update(exact, on=["h", "t"])
    return points.select("h", "t", "agg", "n", "info_seq")


def _point_before(fires: pl.DataFrame, points: pl.DataFrame) -> pl.DataFrame:
    """Each held fire (h, at) with the last point (h, t, ...) at or before it: the value a
    `for` reports is the aggregate when its condition was last evaluated."""
    return fires.sort("h", "at").join_asof(
        points.sort("h", "t"),
        left_on="at",
        right_on="t",
        by="h",
        strategy="backward",
        check_sortedness=False,
    )


def _transitions(eps: pl.DataFrame, by_point: pl.DataFrame) -> pl.DataFrame:
    """fired at fire_at (the aggregate then), resolved at te (the aggregate there).

    te and, without a hold, fire_at are evaluation points; a held fire looks back to the
    last point before it.
    """
    fires = eps.filter("fires").select("h", at="fire_at", first_seen="t0", held=pl.col("hold") > 0)
    direct = fires.filter(~pl.col("held")).join(
        by_point, left_on=["h", "at"], right_on=["h", "t"], how="left"
    )
    held = fires.filter("held")
    if held.height:
        held = _point_before(held, by_point).drop("t")
        direct = pl.concat([direct, held], how="diagonal_relaxed")
    resolved = (
        eps.filter("resolves")
        .select("h", at="te", first_seen="t0")
        .join(by_point, left_on=["h", "at"], right_on=["h", "t"], how="left")
    )

    def shape(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
        return frame.select(
            "h",
            "at",
            transition=pl.lit(kind),
            info_seq="info_seq",
            occurrences=pl.col("n").fill_null(0).cast(pl.Int64),
            first_seen="first_seen",
            agg="agg",
            ord=pl.lit(2**62, dtype=pl.Int64),  # after every event of the instant
        )

    return pl.concat([shape(direct, "fired"), shape(resolved, "resolved")], how="vertical_relaxed")
