"""A condition over time → alert episodes: when each fires (after its `for` hold) and resolves.

Every kind of rule reduces to this. Per alert (group `gid`) the caller gives rows sorted by
(gid, t, order), each saying whether the alert's condition holds after it (`active`): a firing
event of an event rule, a window's aggregate crossing its threshold, an absence deadline. A
row with `is_state` carries what an earlier batch left: the condition, when it became true
(`st_t0`) and whether the alert already fired (`st_fired`); it is always its group's first row.

An episode runs from the row where the condition turns true (t0) to the row where it turns
false (te). It fires at t0 + hold when that instant comes before te (DSL.md §4.3: a resolve at
the deadline itself cancels, since events at an instant apply before its timers); with no
hold it fires at t0, even if te == t0. It resolves at te if it fired. Nothing at or after
`hi` has happened yet: such a fire is left pending in the carried state.
"""

from __future__ import annotations

import polars as pl

from engine.pipeline.groups import GID, cum_in_group, shift_in_group

EPISODE_INPUT = {
    GID: pl.Int64,
    "t": pl.Int64,
    "active": pl.Boolean,
    "is_state": pl.Boolean,
    "st_t0": pl.Int64,
    "st_fired": pl.Boolean,
    "hold": pl.Int64,
    "ord": pl.Int64,  # order within an instant: the event's arrival, or last for timers
}


def mark_episodes(rows: pl.DataFrame) -> pl.DataFrame:
    """Add `ep` (episode number within the group) and `starts`/`ends` flags to sorted rows."""
    prev = shift_in_group(pl.col("active"), False)
    return (
        rows.with_columns(prev_active=prev)
        .with_columns(
            starts=pl.col("active") & ~pl.col("prev_active") & ~pl.col("is_state"),
            ends=~pl.col("active") & pl.col("prev_active") & ~pl.col("is_state"),
        )
        .with_columns(ep=cum_in_group(pl.col("starts")))
    )


def summarize_episodes(rows: pl.DataFrame, hi: int) -> pl.DataFrame:
    """One row per episode: t0, te, fire_at and whether it fires and resolves before `hi`.

    `rows` must come from `mark_episodes`. Episodes that never started (a group whose only
    rows keep the condition false) are left out.
    """
    t0_row = (
        pl.when(pl.col("is_state") & pl.col("active"))
        .then(pl.col("st_t0"))
        .when(pl.col("starts"))
        .then(pl.col("t"))
    )
    eps = (
        rows.group_by(GID, "ep", maintain_order=True)
        .agg(
            t0=t0_row.drop_nulls().first(),
            te=pl.when(pl.col("ends")).then(pl.col("t")).drop_nulls().first(),
            # Where in its instant each end happened: same-instant transitions keep their order.
            start_ord=pl.when(pl.col("starts")).then(pl.col("ord")).drop_nulls().first(),
            end_ord=pl.when(pl.col("ends")).then(pl.col("ord")).drop_nulls().first(),
            fired_before=(pl.col("is_state") & pl.col("st_fired").fill_null(False)).any(),
            hold=pl.col("hold").first(),
        )
        .filter(pl.col("t0").is_not_null())
        .with_columns(fire_at=pl.col("t0") + pl.col("hold"))
    )
    fire_in_time = (
        (pl.col("hold") == 0) | pl.col("te").is_null() | (pl.col("fire_at") < pl.col("te"))
    )
    return eps.with_columns(
        fires=~pl.col("fired_before") & fire_in_time & (pl.col("fire_at") < hi)
    ).with_columns(
        resolves=pl.col("te").is_not_null() & (pl.col("fired_before") | pl.col("fires")),
        is_open=pl.col("te").is_null(),
    )
