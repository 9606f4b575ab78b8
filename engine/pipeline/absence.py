"""Absence rules (DSL.md §4.5): fire at last_seen + D when no newer matching event came."""

from __future__ import annotations

import polars as pl

from engine.pipeline.episodes import mark_episodes, summarize_episodes
from engine.pipeline.event_rules import STEP_OUT
from engine.pipeline.groups import (
    GID,
    by_rule_key,
    ffill_in_group,
    group_ids,
    has_key_in,
    next_in_group,
)

ABSENCE_STATE = pl.Schema(
    {
        "rule": pl.String,
        "key": pl.String,
        "last_f": pl.Int64,
        "info_seq": pl.Int64,
        "active": pl.Boolean,  # the key is silent past its deadline
        "t0": pl.Int64,
        "fired": pl.Boolean,
    }
)
ABSENCE_PARAMS = pl.Schema({"rule": pl.String, "absent": pl.Int64, "hold": pl.Int64})
_LAST = 2**62


def step_absence_rules(
    matches: pl.DataFrame, state: pl.DataFrame, params: pl.DataFrame, hi: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Matches (rule, key, t, seq, firing, late) and carried state → transitions, new state.

    Row kinds: S (carried), F (a matching firing event: the key is heard from, the condition
    is false) and D (a deadline last_seen + D passed in silence: the condition is true).
    """
    if matches.height == 0 and state.height == 0:
        return pl.DataFrame(schema=STEP_OUT), pl.DataFrame(schema=ABSENCE_STATE)
    # Only keys heard from in this batch, or whose deadline (or `for` hold) falls due, change.
    timed = state.join(params, on="rule", how="left", maintain_order="left")
    due = (
        (~pl.col("active") & (pl.col("last_f") + pl.col("absent") < hi))
        | (pl.col("active") & ~pl.col("fired") & (pl.col("t0") + pl.col("hold") < hi))
    ).fill_null(False)
    heard = matches.filter(pl.col("firing") & ~pl.col("late")).select("rule", "key").unique()
    # Row for row with `state` (the join kept its order): filters, not joins (has_key_in).
    still = timed.select(~due & pl.col("absent").is_not_null() & ~has_key_in(heard)).to_series()
    idle = state.filter(still)
    state = state.filter(~still)
    if heard.height == 0 and state.height == 0:
        return pl.DataFrame(schema=STEP_OUT), idle
    ev = matches.filter(pl.col("firing") & ~pl.col("late")).select(
        "rule", "key", "t", ord="seq", kind=pl.lit("F"), info_seq="seq", active=pl.lit(False)
    )
    st = state.join(params.select("rule"), on="rule", how="inner").select(
        "rule",
        "key",
        t="last_f",
        ord=pl.lit(-1, dtype=pl.Int64),
        kind=pl.lit("S"),
        info_seq="info_seq",
        active="active",
        st_t0="t0",
        st_fired="fired",
    )
    rows = (
        pl.concat([st, ev], how="diagonal_relaxed")
        .join(params, on="rule", how="inner")
        .sort("rule", "key", "t", "ord")
        .with_columns(gid=group_ids("rule", "key"))
    )
    kind = pl.col("kind")
    nxt = next_in_group(pl.col("t"))
    deadline = pl.col("t") + pl.col("absent")
    # A key already silent (a carried S row that is active) has had its deadline.
    counts = (kind == "F") | ((kind == "S") & ~pl.col("active"))
    due = counts & (
        (nxt.is_null() & (deadline < hi)) | (nxt - pl.col("t") > pl.col("absent"))
    ).fill_null(False)
    deadlines = rows.filter(due).with_columns(
        t=deadline,
        ord=pl.lit(_LAST, dtype=pl.Int64),
        kind=pl.lit("D"),
        active=pl.lit(True),
        st_t0=pl.lit(None, dtype=pl.Int64),
        st_fired=pl.lit(None, dtype=pl.Boolean),
    )
    rows = (
        pl.concat([rows, deadlines], how="vertical_relaxed")
        .sort(GID, "t", "ord")
        .with_columns(
            is_state=kind == "S",
            last_seq=ffill_in_group(pl.when(kind != "D").then(pl.col("info_seq"))),
            last_t=ffill_in_group(pl.when(kind != "D").then(pl.col("t"))),
        )
    )
    rows = mark_episodes(rows)
    eps = summarize_episodes(rows, hi)
    at_row = rows.select(GID, "t", "last_seq").unique([GID, "t"], keep="last", maintain_order=True)
    names = rows.group_by(GID).agg(pl.col("rule").first(), pl.col("key").first())

    def emit(frame: pl.DataFrame, when: str, transition: str) -> pl.DataFrame:
        return (
            frame.sort(GID, when)
            .join_asof(
                at_row,
                left_on=when,
                right_on="t",
                by=GID,
                strategy="backward",
                check_sortedness=False,
            )
            .join(names, on=GID, how="left")
            .select(
                "rule",
                "key",
                at=when,
                transition=pl.lit(transition),
                info_seq="last_seq",
                occurrences=pl.lit(1, dtype=pl.Int64),
                first_seen="t0",
                agg=pl.lit(None, dtype=pl.Float64),
                ord=pl.col("end_ord")
                if transition == "resolved"
                else pl.lit(_LAST, dtype=pl.Int64),
            )
        )

    out = pl.concat(
        [
            emit(eps.filter("fires"), "fire_at", "fired"),
            emit(eps.filter("resolves"), "te", "resolved"),
        ],
        how="vertical_relaxed",
    ).cast(STEP_OUT)

    last = rows.group_by(GID).agg(
        pl.col("rule").first(),
        pl.col("key").first(),
        pl.col("last_t").last().alias("last_f"),
        pl.col("last_seq").last().alias("info_seq"),
        pl.col("ep").last(),
    )
    open_eps = eps.filter("is_open").select(
        GID, "ep", "t0", fired=pl.col("fired_before") | pl.col("fires")
    )
    state_out = (
        last.join(open_eps, on=[GID, "ep"], how="left")
        .with_columns(active=pl.col("t0").is_not_null(), fired=pl.col("fired").fill_null(False))
        .select(list(ABSENCE_STATE))
        .cast(ABSENCE_STATE)
    )
    state_out = by_rule_key(pl.concat([idle, state_out]))
    return out, state_out
