"""Event rules and `new within` rules (DSL.md §4.3, §4): fire, repeat, resolve, `for`, `resolve after`.

All event rules of a batch are processed together in one long frame of (rule, key) groups.
Row kinds: S (what an earlier batch left), F (a matching firing event), X (a matching resolved
event) and T (a `resolve after` deadline that passed with no firing event).
"""

from __future__ import annotations

import polars as pl

from engine.pipeline.episodes import mark_episodes, summarize_episodes
from engine.pipeline.groups import (
    GID,
    by_rule_key,
    cum_in_group,
    ffill_in_group,
    group_ids,
    has_key_in,
    next_in_group,
    shift_in_group,
)

EVENT_STATE = pl.Schema(
    {
        "rule": pl.String,
        "key": pl.String,
        "last_f": pl.Int64,  # instant of the latest matching firing event
        "active": pl.Boolean,  # pending or firing
        "t0": pl.Int64,  # when the current episode started
        "fired": pl.Boolean,
        "info_seq": pl.Int64,  # the latest matching firing event
        "count": pl.Int64,  # firing events in the current episode
    }
)

# Per-rule settings joined onto rows: hold (`for`), `resolve after` and `new within`, in µs.
EVENT_PARAMS = pl.Schema(
    {"rule": pl.String, "hold": pl.Int64, "resolve_after": pl.Int64, "new_within": pl.Int64}
)

STEP_OUT = pl.Schema(
    {
        "rule": pl.String,
        "key": pl.String,
        "at": pl.Int64,
        "transition": pl.String,
        "info_seq": pl.Int64,
        "occurrences": pl.Int64,
        "first_seen": pl.Int64,
        "agg": pl.Float64,
        "ord": pl.Int64,  # order within the instant (arrival of the deciding event)
    }
)

_LAST = 2**62  # deadlines sort after every event at the same instant


def step_event_rules(
    matches: pl.DataFrame, state: pl.DataFrame, params: pl.DataFrame, hi: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Process matches (rule, key, t, seq, firing, late) of event and `new` rules up to `hi`.

    Returns the transitions (STEP_OUT) and the state to carry (EVENT_STATE).
    """
    if matches.height == 0 and state.height == 0:
        return pl.DataFrame(schema=STEP_OUT), pl.DataFrame(schema=EVENT_STATE)
    # Only alerts with a matching event in this batch, or a timer due before `hi`, can change.
    timed = state.join(params, on="rule", how="left", maintain_order="left")
    due = (
        (~pl.col("fired") & pl.col("active") & (pl.col("t0") + pl.col("hold") < hi))
        | (pl.col("active") & (pl.col("last_f") + pl.col("resolve_after") < hi))
        | pl.col("hold").is_null()  # the rule went away: let the caller's filter drop it
    ).fill_null(False)
    # Row for row with `state` (the join kept its order): filters, not joins (has_key_in).
    still = timed.select(~due & ~has_key_in(matches)).to_series()
    idle = state.filter(still)
    state = state.filter(~still)
    if matches.height == 0 and state.height == 0:
        return pl.DataFrame(schema=STEP_OUT), _drop_forgotten(idle, params, hi)
    ev = (
        matches.join(params, on="rule", how="inner")
        # `new within` rules see only firing, timely events (DSL.md §4, §4.1).
        .filter(pl.col("new_within").is_null() | (pl.col("firing") & ~pl.col("late")))
        .select(
            "rule",
            "key",
            "t",
            ord=pl.col("seq"),
            kind=pl.when(pl.col("firing")).then(pl.lit("F")).otherwise(pl.lit("X")),
            info_seq=pl.col("seq"),
        )
    )
    st = state.join(params.select("rule"), on="rule", how="inner").select(
        "rule",
        "key",
        t="last_f",
        ord=pl.lit(-1, dtype=pl.Int64),
        kind=pl.lit("S"),
        info_seq="info_seq",
        st_active="active",
        st_t0="t0",
        st_fired="fired",
        st_count="count",
    )
    rows = (
        pl.concat([st, ev], how="diagonal_relaxed")
        .join(params, on="rule", how="left")
        .sort("rule", "key", "t", "ord")
        .with_columns(gid=group_ids("rule", "key"))
    )
    is_new_rule = pl.col("new_within").is_not_null()
    # `new within D`: a firing event whose key had no matching event in (t - D, t].
    prev_t = shift_in_group(pl.col("t"))
    rows = rows.with_columns(
        is_new=(pl.col("kind") == "F")
        & (prev_t.is_null() | (pl.col("t") - prev_t >= pl.col("new_within"))).fill_null(False)
    )
    rows = _with_deadlines(rows, hi)
    kind = pl.col("kind")
    event_active = pl.when(kind == "S").then(pl.col("st_active")).otherwise(kind == "F")
    # A `new` alert is active from a new event until the next deadline, whatever comes between.
    seeds = (pl.col("is_new") | ((kind == "S") & pl.col("st_active").fill_null(False))).cast(
        pl.Int64
    )
    new_active = (seeds.cum_sum().over(GID, "seg") > 0) & (kind != "T")
    rows = rows.with_columns(
        active=pl.when(is_new_rule).then(new_active).otherwise(event_active).fill_null(False),
        is_state=kind == "S",
    )
    rows = mark_episodes(rows)
    eps = summarize_episodes(rows, hi)

    # Occurrences so far in the episode, and the latest firing event, at every row.
    # Only events that feed an open alert count: a `new` rule ignores a known key's events.
    fed = (
        pl.when((kind == "F") & pl.col("active"))
        .then(1)
        .when(kind == "S")
        .then(pl.col("st_count").fill_null(0))
        .otherwise(0)
    )
    rows = rows.with_columns(
        occ=fed.cum_sum().over(GID, "ep"),
        last_seq=ffill_in_group(pl.when(kind.is_in(["F", "S"])).then(pl.col("info_seq"))),
        last_t=ffill_in_group(pl.when(kind.is_in(["F", "S"])).then(pl.col("t"))),
    )
    feeders = (
        rows.filter(kind.is_in(["F", "S"]))
        .unique([GID, "ep", "t"], keep="last", maintain_order=True)
        .select(GID, "ep", "t", "occ", "last_seq")
    )
    fired = (
        eps.filter("fires")
        .sort(GID, "ep", "fire_at")
        .join_asof(
            feeders,
            left_on="fire_at",
            right_on="t",
            by=[GID, "ep"],
            strategy="backward",
            check_sortedness=False,
        )
        .select(
            GID,
            at="fire_at",
            transition=pl.lit("fired"),
            info_seq="last_seq",
            occurrences="occ",
            first_seen="t0",
            ord=pl.when(pl.col("hold") == 0).then(pl.col("start_ord")).otherwise(_LAST),
        )
    )
    ends = rows.filter("ends").select(GID, "ep", "last_seq", "occ")
    resolved = (
        eps.filter("resolves")
        .join(ends, on=[GID, "ep"], how="left")
        .select(
            GID,
            at="te",
            transition=pl.lit("resolved"),
            info_seq="last_seq",
            occurrences="occ",
            first_seen="t0",
            ord="end_ord",
        )
    )
    repeated = (
        rows.filter((kind == "F") & pl.col("active"))
        .join(eps.filter(pl.col("fired_before") | pl.col("fires")), on=[GID, "ep"], how="inner")
        .filter(pl.col("t") > pl.col("fire_at"))
        # One row per instant: instants close the same way however the stream is batched.
        .group_by(GID, "ep", "t")
        .agg(
            at=pl.col("t").max(),
            info_seq=pl.col("info_seq").last(),
            occurrences=pl.len().cast(pl.Int64),
            first_seen=pl.col("t0").first(),
            ord=pl.col("ord").max(),
        )
        .select(
            GID,
            "at",
            transition=pl.lit("repeated"),
            info_seq="info_seq",
            occurrences="occurrences",
            first_seen="first_seen",
            ord="ord",
        )
    )
    names = rows.group_by(GID).agg(pl.col("rule").first(), pl.col("key").first())
    out = (
        pl.concat([fired, repeated, resolved], how="vertical_relaxed")
        .join(names, on=GID, how="left")
        .select(
            "rule",
            "key",
            "at",
            "transition",
            "info_seq",
            pl.col("occurrences").cast(pl.Int64),
            pl.col("first_seen").cast(pl.Int64),
            agg=pl.lit(None, dtype=pl.Float64),
            ord=pl.col("ord").cast(pl.Int64),
        )
    )
    carried = pl.concat([_drop_forgotten(idle, params, hi), _next_state(rows, eps, hi)])
    return out, by_rule_key(carried)


def _drop_forgotten(idle: pl.DataFrame, params: pl.DataFrame, hi: int) -> pl.DataFrame:
    """Idle state stays as it is, except `new` rules' memories older than their D."""
    new_within = idle.join(params.select("rule", "new_within"), on="rule", how="left")["new_within"]
    keep = idle["active"] | (idle["last_f"] + new_within.fill_null(0) > hi).fill_null(False)
    return idle.filter(keep)


def _with_deadlines(rows: pl.DataFrame, hi: int) -> pl.DataFrame:
    """Insert T rows where `resolve after` falls due: no firing event for that long."""
    kind = pl.col("kind")
    feeds = (kind == "F") | ((kind == "S") & pl.col("st_active").fill_null(False))
    nxt = next_in_group(pl.col("t"))
    deadline = pl.col("t") + pl.col("resolve_after")
    # An event exactly at the deadline still counts (events before timers at an instant).
    due = (
        feeds
        & pl.col("resolve_after").is_not_null()
        & (
            (nxt.is_null() & (deadline < hi)) | (nxt - pl.col("t") > pl.col("resolve_after"))
        ).fill_null(False)
    )
    timeouts = rows.filter(due).with_columns(
        t=deadline,
        ord=pl.lit(_LAST, dtype=pl.Int64),
        kind=pl.lit("T"),
        is_new=pl.lit(False),
        st_active=pl.lit(None, dtype=pl.Boolean),
        st_t0=pl.lit(None, dtype=pl.Int64),
        st_fired=pl.lit(None, dtype=pl.Boolean),
        st_count=pl.lit(None, dtype=pl.Int64),
    )
    if timeouts.height:
        rows = pl.concat([rows, timeouts], how="vertical_relaxed").sort(GID, "t", "ord")
    return rows.with_columns(seg=cum_in_group(kind == "T"))


def _next_state(rows: pl.DataFrame, eps: pl.DataFrame, hi: int) -> pl.DataFrame:
    last = rows.group_by(GID).agg(
        pl.col("rule").first(),
        pl.col("key").first(),
        pl.col("last_t").last().alias("last_f"),
        pl.col("last_seq").last().alias("info_seq"),
        pl.col("occ").last().alias("count"),
        pl.col("ep").last().alias("ep"),
        pl.col("new_within").first(),
        pl.col("active").last().alias("active_now"),
    )
    open_eps = eps.filter("is_open").select(
        GID, "ep", "t0", fired=pl.col("fired_before") | pl.col("fires")
    )
    state = last.join(open_eps, on=[GID, "ep"], how="left").with_columns(
        active=pl.col("t0").is_not_null() & pl.col("active_now")
    )
    # Keep open alerts; a `new` rule also remembers a key's last event for D.
    keep = pl.col("active") | (
        pl.col("new_within").is_not_null() & (pl.col("last_f") + pl.col("new_within") > hi)
    )
    return (
        state.filter(keep)
        .with_columns(
            fired=pl.col("fired").fill_null(False),
            count=pl.when(pl.col("active")).then(pl.col("count")).otherwise(0),
        )
        .select(list(EVENT_STATE))
        .cast(EVENT_STATE)
    )
