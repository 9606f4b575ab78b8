"""Silences and inhibitions (DSL.md §5): which ids mute each alert at its transition's instant."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dsl.compiler import CompiledInhibit, CompiledSilence

MUTED = pl.List(pl.String)


def at_time(col: str = "at") -> pl.Expr:
    return pl.from_epoch(pl.col(col), time_unit="us").dt.replace_time_zone("UTC")


def muted_by(
    frame: pl.DataFrame,
    silences: Sequence[CompiledSilence],
    inhibits: Sequence[CompiledInhibit],
    intervals: pl.DataFrame,
) -> pl.Series:
    """For each row of the alert frame, the sorted ids of the silences and inhibits muting it.

    `intervals` holds every alert that fires at some point of the batch (rule, key, fired_at,
    resolved_at or null, and its alert-frame columns): an inhibit's source must be firing at
    the instant, fired at or before it and not yet resolved; an alert never inhibits itself.
    """
    if frame.height == 0:
        return pl.Series("muted_by", [], dtype=MUTED)
    parts: list[pl.Expr] = []
    at = at_time()
    for s in silences:
        hit = (s.when & s.active(at)).fill_null(False)
        parts.append(
            pl.when(hit)
            .then(pl.lit([s.silence_id], dtype=MUTED))
            .otherwise(pl.lit([], dtype=MUTED))
        )
    rows = frame.with_row_index("__row")
    extra: list[pl.DataFrame] = []
    for inh in inhibits:
        targets = rows.filter(inh.when).select(
            "__row", "at", "rule", "key", *[e.alias(f"__on{i}") for i, e in enumerate(inh.on_exprs)]
        )
        if targets.height == 0 or intervals.height == 0:
            continue
        sources = intervals.filter(inh.while_).select(
            "fired_at",
            "resolved_at",
            *[e.alias(f"__on{i}") for i, e in enumerate(inh.on_exprs)],
            src_rule="rule",
            src_key="key",
        )
        on = [f"__on{i}" for i in range(len(inh.on_exprs))]
        joined = (
            targets.join(sources, on=on, how="inner") if on else targets.join(sources, how="cross")
        )
        hits = (
            joined.filter(
                (pl.col("fired_at") <= pl.col("at"))
                & (pl.col("resolved_at").is_null() | (pl.col("at") < pl.col("resolved_at")))
                & ~((pl.col("src_rule") == pl.col("rule")) & (pl.col("src_key") == pl.col("key")))
            )
            .select("__row")
            .unique()
        )
        if hits.height:
            extra.append(hits.with_columns(id=pl.lit(inh.inhibit_id)))
    base = rows.select(
        "__row",
        muted=pl.concat_list(parts) if parts else pl.lit([], dtype=MUTED),
    )
    if extra:
        inhibited = pl.concat(extra).group_by("__row").agg(pl.col("id").alias("inh"))
        base = base.join(inhibited, on="__row", how="left").with_columns(
            muted=pl.concat_list("muted", pl.col("inh").fill_null(pl.lit([], dtype=MUTED)))
        )
    return base.sort("__row")["muted"].list.sort().alias("muted_by")
