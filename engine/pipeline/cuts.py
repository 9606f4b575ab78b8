"""Order statistics against a constant (`p95(latency_ms) > 1400 within 5m`) decided by counting.

Whether the p-th percentile, the min or the max of a window is above a constant T does not
need the percentile: it needs how many values lie below T. With the window's m values sorted,
a percentile interpolates between the values at ranks f and f + 1 around q * (m - 1), so it
is above T when the value at rank f is (fewer than f + 1 values are at or under T), and below
T when the value at rank f + 1 is. Counts roll in one cheap pass and subtract exactly for a
late event that had not arrived yet, where a percentile has to roll over every row with an
order-statistic tree and roll again over each late event's shadow (windows._roll_shadows).

    values 3 5 7 9, p50: rank 1.5, between the values at ranks 1 (5) and 2 (7)
    T = 4: 1 value under T, so rank 1 is over it: the median is over T        (decided)
    T = 8: 3 values under T, so rank 2 is under it: the median is under T     (decided)
    T = 6: 2 values under T: rank 1 under, rank 2 over; the median is 6       (unsure)

The ranks are widened by a hair, and T by a margin far wider than any rounding of the
interpolation, so a decision never rests on the last bits: a window whose values at those
ranks lie within the margin of T, or that holds an infinity, is unsure, and its percentile is
computed from its values (`exact_values`). So are the points whose value a transition reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from dsl.compiler import WindowSpec
from engine.pipeline.groups import group_ids, per_rule

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

# Per row, for the rules decided by counting: the value is finite, infinite, below T - margin,
# at or under T + margin. The window sums of these are all the decision reads.
FINITE, INFINITE, BELOW, UPTO = "__finite", "__infinite", "__below", "__upto"
CUT_COUNTS = (FINITE, INFINITE, BELOW, UPTO)

RANKS = {"min": 0.0, "max": 1.0}
# How far from T a value must be for the interpolation's rounding not to matter: relative to
# the largest magnitude involved, a million times the few ulps it can be off by.
MARGIN = 1e-9
# How far from an integer a rank position must be to trust floor and ceil of it.
RANK_SLACK = 1e-7


@dataclass(frozen=True)
class Cut:
    """A window condition `AGG OP T` with AGG an order statistic and T a constant."""

    rank: float  # the quantile: 0 for min, 1 for max
    op: str
    threshold: float

    @classmethod
    def of(cls, spec: WindowSpec) -> Cut | None:
        agg = spec.agg
        if spec.prev:
            return None
        rank = agg.quantile if agg.quantile is not None else RANKS.get(agg.name)
        threshold = constant(spec.threshold)
        if rank is None or threshold is None:
            return None
        return cls(float(rank), spec.op, threshold)


def constant(expr: pl.Expr) -> float | None:
    """A window condition's right side as a number, if it is a constant."""
    try:
        value = pl.select(expr).item()
    except pl.exceptions.PolarsError:  # not a constant after all: evaluate the usual way
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value)


# What bounds an aggregate over any window of a group's rows, from all of them: the rows
# (count, and rate per second of the window), the rows with a value (count_distinct), the
# largest or the smallest value (min, max, percentiles: an interpolation stays between two).
ROWS, VALUED, LARGEST, SMALLEST = "rows", "valued", "largest", "smallest"


@dataclass(frozen=True)
class Bound:
    """A window condition `AGG OP T` that no window of a group can meet when a bound of its
    rows already fails it: `count() > 40` over a group of 12 rows, `p95(x) > 1400` over a
    group whose largest value is 900. Such a group needs no point evaluated: in the engine
    benchmark, 135,000 of a pass's 300,000 window rows are in such groups (BENCHMARKS.md)."""

    stat: str  # ROWS, VALUED, LARGEST or SMALLEST
    op: str
    threshold: float
    seconds: float = 1.0  # rate(): the window in seconds, the rows are divided by

    @classmethod
    def of(cls, spec: WindowSpec) -> Bound | None:
        agg = spec.agg
        threshold = constant(spec.threshold)
        if spec.prev or threshold is None:
            return None
        ordered = agg.quantile is not None or agg.name in ("min", "max")
        if spec.op in (">", ">="):
            if agg.name in ("count", "rate"):
                seconds = spec.duration_ms / 1000 if agg.name == "rate" else 1.0
                return cls(ROWS, spec.op, threshold, seconds)
            if agg.name == "count_distinct":
                return cls(VALUED, spec.op, threshold)
            if ordered:
                return cls(LARGEST, spec.op, threshold)
        if spec.op in ("<", "<=") and ordered:
            return cls(SMALLEST, spec.op, threshold)
        return None


def unreachable(bounds: Mapping[str, Bound], data: pl.DataFrame) -> pl.Series:
    """The groups (h) of `data` (h, rule, vnum, vtext) whose condition no window can meet.

    Counts are exact. A percentile is compared with its bound widened by MARGIN, as in
    cut_counts: an interpolation rounds, and a group only drops out when it is clearly short.
    """
    rows = data.filter(pl.col("rule").is_in(list(bounds)))
    if rows.height == 0:
        return pl.Series("h", [], dtype=pl.UInt64)
    stat = per_rule({r: b.stat for r, b in bounds.items()}, pl.String())
    op = per_rule({r: b.op for r, b in bounds.items()}, pl.String())
    threshold = per_rule({r: b.threshold for r, b in bounds.items()}, pl.Float64())
    seconds = per_rule({r: b.seconds for r, b in bounds.items()}, pl.Float64())
    v = pl.col("vnum")
    per_group = rows.group_by("h", "rule").agg(
        n=pl.len().cast(pl.Float64),
        valued=(pl.col("vtext").is_not_null() & (pl.col("vtext") != "")).sum().cast(pl.Float64),
        largest=v.max(),
        smallest=v.min(),
        big=pl.when(v.is_finite()).then(v.abs()).max(),
    )
    margin = MARGIN * pl.max_horizontal(threshold.abs(), pl.col("big"), pl.lit(1e-300))
    strict = op.is_in([">", "<"])
    count = pl.when(stat == ROWS).then(pl.col("n") / seconds).otherwise(pl.col("valued"))
    reach = (
        pl.when(stat.is_in([ROWS, VALUED]))
        .then(pl.when(strict).then(count > threshold).otherwise(count >= threshold))
        .when(stat == LARGEST)
        .then(pl.col("largest") > threshold - margin)
        .otherwise(pl.col("smallest") < threshold + margin)
    )
    return per_group.filter(~reach.fill_null(False))["h"]


def cut_counts(cuts: Mapping[str, Cut]) -> dict[str, pl.Expr]:
    """The CUT_COUNTS columns of the cut rules' rows (rule, vnum): each 0 or 1.

    The margin around T scales with the largest magnitude among the values of the rolling
    pass, so it is the same for every window of a rule in it, and an interpolation between
    two far-apart values cannot round across it.
    """
    v = pl.col("vnum")
    threshold = per_rule({r: c.threshold for r, c in cuts.items()}, pl.Float64())
    largest = pl.when(v.is_finite()).then(v.abs()).max()  # over every rule of the pass
    margin = MARGIN * pl.max_horizontal(threshold.abs(), largest, pl.lit(1e-300))
    finite = v.is_finite().fill_null(False)
    return {
        FINITE: finite.cast(pl.Int64),
        INFINITE: v.is_infinite().fill_null(False).cast(pl.Int64),
        BELOW: (finite & (v < threshold - margin)).cast(pl.Int64),
        UPTO: (finite & (v <= threshold + margin)).cast(pl.Int64),
    }


def decide(values: pl.DataFrame, cuts: Mapping[str, Cut]) -> pl.DataFrame:
    """The condition at each point of a cut rule from its window counts: `cond`, and `unsure`
    where the counts cannot tell (`values` holds rule and the window sums of CUT_COUNTS)."""
    ids = list(cuts)
    index = pl.col("rule").replace_strict(ids, list(range(len(ids))), return_dtype=pl.UInt32)

    def param(values: list[float]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.Float64)).gather(pl.col("__cut"))

    q = param([c.rank for c in cuts.values()])
    # which side of T makes the condition true: above for > and >=, below for < and <=,
    # either for != (a decided value is not T), neither for ==
    wants_above = param([float(c.op in (">", ">=", "!=")) for c in cuts.values()]) > 0
    wants_below = param([float(c.op in ("<", "<=", "!=")) for c in cuts.values()]) > 0
    m = pl.col(FINITE)
    pos = (m - 1) * q
    exact_rank = (q == 0) | (q == 1)
    lower = pl.when(exact_rank).then(pos).otherwise((pos - RANK_SLACK).floor()).clip(0)
    upper = (
        pl.when(exact_rank).then(pos).otherwise((pos + RANK_SLACK).ceil()).clip(upper_bound=m - 1)
    )
    some = m > 0
    return (
        values.with_columns(__cut=index)
        .with_columns(
            # the value at the lower rank is over T + margin, at the upper rank under T - margin
            __above=some & (lower >= pl.col(UPTO)),
            __below=some & (upper < pl.col(BELOW)),
            __want_above=wants_above,
            __want_below=wants_below,
        )
        .with_columns(
            cond=(pl.col("__above") & pl.col("__want_above"))
            | (pl.col("__below") & pl.col("__want_below")),
            unsure=(pl.col(INFINITE) > 0) | (some & ~pl.col("__above") & ~pl.col("__below")),
        )
        .drop("__cut", "__above", "__below", "__want_above", "__want_below")
    )


def quantile(v: pl.Expr, rank: float) -> pl.Expr:
    """The linear percentile of `v` in an aggregation, as DuckDB's `quantile_cont` gives it
    where an end of the interpolation is infinite: that end (between two infinities of the
    same sign, that infinity), and NaN only between -inf and +inf.

    Polars' kernels give NaN from `-inf + f * (3 - -inf)` and, rolling, from two equal
    infinities; a NaN aggregate is no value, so a condition over it would never hold.
    """
    if rank in (0.0, 1.0):
        return v.min() if rank == 0.0 else v.max()
    lo, hi = v.quantile(rank, "lower"), v.quantile(rank, "higher")
    ends = (
        pl.when(lo == hi)
        .then(lo)
        .when(lo.is_infinite() & hi.is_infinite())
        .then(pl.lit(float("nan")))
        .when(lo.is_infinite())
        .then(lo)
        .otherwise(hi)
    )
    return (
        pl.when(lo.is_infinite() | hi.is_infinite())
        .then(ends)
        .otherwise(v.quantile(rank, "linear"))
    )


def in_windows(pts: pl.DataFrame, rows: pl.DataFrame, aggs: list[pl.Expr]) -> pl.DataFrame:
    """`aggs` over each point's window, gathered: (pid, aggregates) for the points with rows.

    `pts` (pid, axis, width, t_known) and `rows` (axis, t_in, vnum) lie on one axis with groups
    far apart, `rows` sorted; a row is in a point's window when its axis is in
    (axis - width, axis] and it had arrived by t_known (DSL.md §4.1). For a few points only:
    each window's rows are copied.
    """
    axis = rows["axis"]
    taken = (
        pts.select(
            "pid",
            "t_known",
            i=pl.int_ranges(
                axis.search_sorted(pts["axis"] - pts["width"], side="right"),
                axis.search_sorted(pts["axis"], side="right"),
                dtype=pl.UInt32,
            ),
        )
        .explode("i")
        .drop_nulls("i")
    )
    taken = taken.with_columns(rows.select("t_in", "vnum")[taken["i"]]).filter(
        pl.col("t_in") <= pl.col("t_known")
    )
    return taken.group_by("pid").agg(aggs)


def exact_values(
    cuts: Mapping[str, Cut], widths: Mapping[str, int], data: pl.DataFrame, points: pl.DataFrame
) -> pl.DataFrame:
    """Each point's order statistic from the values in its window: (h, t, agg).

    `points` (h, rule, t) are cut rules' points, evaluated at their own instant; `data` the
    window rows (h, rule, ts, t_in, vnum). A row is in the window when its ts is in (t - W, t]
    and it had arrived by t (DSL.md §4.1). Only the windows of these points are gathered.
    """
    out_schema = {"h": pl.UInt64, "t": pl.Int64, "agg": pl.Float64}
    if points.height == 0:
        return pl.DataFrame(schema=out_schema)
    rows = (
        data.filter(
            pl.col("h").is_in(points["h"].unique().implode()) & pl.col("vnum").is_not_null()
        )
        .select("h", "ts", "t_in", "vnum")
        .sort("h", "ts")
    )
    width = per_rule(dict(widths), pl.Int64())
    lo = min(int(rows["ts"].min() or 0), int(points["t"].min() or 0))  # type: ignore[arg-type]
    hi = max(int(rows["ts"].max() or 0), int(points["t"].max() or 0))  # type: ignore[arg-type]
    gap = hi - lo + max(widths.values()) + 1
    # Groups laid end to end on one axis, as in windows._rolled, so one search finds a window.
    rows = rows.with_columns(g=group_ids("h") * gap).with_columns(
        axis=pl.col("g") + pl.col("ts") - lo
    )
    pts = (
        points.select("h", "rule", "t")
        .with_row_index("pid")
        .join(rows.group_by("h").agg(pl.col("g").first()), on="h", how="left")
        .with_columns(axis=pl.col("g") + pl.col("t") - lo, width=width)
    )
    ranks = sorted({c.rank for c in cuts.values()})
    names = {rank: f"__q{i}" for i, rank in enumerate(ranks)}
    aggs = [quantile(pl.col("vnum"), rank).alias(names[rank]) for rank in ranks]
    got = pts.select("pid", "h", "rule", "t").join(
        in_windows(pts.with_columns(t_known="t"), rows, aggs), on="pid", how="left"
    )
    rank_of = per_rule({r: c.rank for r, c in cuts.items()}, pl.Float64())
    chain: Then | ChainedThen = pl.when(rank_of == ranks[0]).then(pl.col(names[ranks[0]]))
    for rank in ranks[1:]:
        chain = chain.when(rank_of == rank).then(pl.col(names[rank]))
    return got.select("h", "t", agg=chain).cast(out_schema)  # type: ignore[arg-type]
