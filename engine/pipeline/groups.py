"""Group-wise operations on frames already sorted by group, without `.over()` hashing.

The pipeline sorts its long frames by (group, time, order) once; these helpers then use the
sort: a group starts where `gid` changes, shifts and cumulative sums reset there.

    gid  x      shift_in_group(x)   cum_in_group(x)
    1    1      null                1
    1    2      1                   3
    2    5      null                5
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

GID = "gid"


def by_rule_key(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame.sort("rule", "key")`, as two single-column sorts (the second stable).

    The same order, nulls first as there. A multi-column sort encodes every row's strings:
    sorting 190,000 state rows with a batch's new keys appended took 66 ms, this takes 4 ms,
    and the state is sorted after every pass (BENCHMARKS.md, ingest).
    """
    return frame.sort("key").sort("rule", maintain_order=True)


def has_key_in(keys: pl.DataFrame) -> pl.Expr:
    """Whether a row's (rule, key) is among `keys`' rows: for filtering state frames where an
    anti or semi join would gather every column of the rows it keeps. With 350,000 open alerts
    (their list columns) an anti join took 170 ms whatever `keys` held; this filter 5-10 ms."""
    return pl.struct("rule", "key").is_in(
        keys.select(pl.struct("rule", "key")).to_series().implode()
    )


def per_rule(values: Mapping[str, object], dtype: pl.DataType) -> pl.Expr:
    """Each row's rule's constant (its window, hold, threshold) as a column; null for a rule
    not in `values`."""
    return pl.col("rule").replace_strict(values, default=None, return_dtype=dtype)


def group_ids(*columns: str) -> pl.Expr:
    """Numbers the groups of a frame sorted by `columns`: 1, 1, 2, ... (the `gid` column)."""
    change = pl.lit(False)
    for c in columns:
        change = change | (pl.col(c) != pl.col(c).shift(1))
    return change.fill_null(True).cum_sum().cast(pl.Int64)


def group_start() -> pl.Expr:
    g = pl.col(GID)
    return g != g.shift(1, fill_value=-1)


def shift_in_group(expr: pl.Expr, fill: object = None) -> pl.Expr:
    """The previous row's value within the same group (`fill` on each group's first row)."""
    return pl.when(group_start()).then(pl.lit(fill)).otherwise(expr.shift(1))


def cum_in_group(expr: pl.Expr) -> pl.Expr:
    """Running sum of an integer expression that restarts at each group."""
    total = expr.cast(pl.Int64).cum_sum()
    before = total - expr.cast(pl.Int64)
    base = pl.when(group_start()).then(before).otherwise(None).forward_fill()
    return total - base


def ffill_in_group(expr: pl.Expr) -> pl.Expr:
    """Carry the last non-null value forward, never across a group boundary."""
    # Tag each value with its group so a forward fill that crosses a boundary can be undone.
    tagged = pl.when(expr.is_not_null()).then(pl.col(GID))
    filled_gid = tagged.forward_fill()
    return pl.when(filled_gid == pl.col(GID)).then(expr.forward_fill())


def bfill_in_group(expr: pl.Expr) -> pl.Expr:
    """Carry the next non-null value backward, never across a group boundary."""
    tagged = pl.when(expr.is_not_null()).then(pl.col(GID))
    filled_gid = tagged.backward_fill()
    return pl.when(filled_gid == pl.col(GID)).then(expr.backward_fill())


def next_in_group(expr: pl.Expr) -> pl.Expr:
    """The next row's value within the same group (null on each group's last row)."""
    g = pl.col(GID)
    return pl.when(g.shift(-1) == g).then(expr.shift(-1))
