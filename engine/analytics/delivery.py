"""Notification delivery (DESIGN.md §7): notifications by channel and status, and latency.

Latency is sent_at − created_at of sent notifications (seconds: mean, median, p90). The period
is over the notification's `created_at`; the other filters apply to the alert it was made for.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.analytics import metrics, rollup
from engine.analytics.filters import Filters
from engine.analytics.frames import records, share
from engine.analytics.metrics import stats_sql
from engine.analytics.warehouse import Warehouse

STATUSES = ("pending", "held", "sent", "failed", "dead", "suppressed")


def delivery(wh: Warehouse, filters: Filters) -> dict[str, Any]:
    frame = _rolled_up(wh, filters)
    if frame is None:
        frame = _exact(wh, filters)
    total = frame.filter(pl.col("channel").is_null())
    channels = frame.filter(pl.col("channel").is_not_null()).sort(
        ["notifications", "channel"], descending=[True, False]
    )
    out_total = (
        _shaped(records(total)[0])
        if total.height
        else _shaped({"notifications": 0, **dict.fromkeys(STATUSES, 0), "attempts": 0})
    )
    return {
        "filters": filters.to_dict(),
        "total": out_total,
        "channels": [_shaped(r) for r in records(channels)],
    }


def _rolled_up(wh: Warehouse, filters: Filters) -> pl.DataFrame | None:
    """Counts from the notifications rollups; latency quantiles exact up to EXACT_MAX sent
    notifications (None: the exact query answers), from 1% histograms past it."""
    rows = rollup.notification_rows(filters)
    if rows is None or not wh.rolled_up("notifications"):
        return None
    sql, params = rows
    counts = ", ".join(f"sum(n) FILTER (status = '{s}') AS {s}" for s in STATUSES)
    frame = wh.frame(
        f"""
        SELECT channel, sum(notifications) AS notifications, {counts},
               sum(attempts) AS attempts, sum(lat_n) AS latency_count,
               sum(lat_us) / sum(lat_n) / 1e6 AS latency_mean
        FROM (SELECT *, notifications AS n FROM ({sql}))
        GROUP BY GROUPING SETS ((), (channel))
        """,
        params,
    )
    total = frame.filter(pl.col("channel").is_null())
    if total.height == 0 or (total["latency_count"][0] or 0) <= metrics.EXACT_MAX:
        return None
    hsql, hparams = rollup.notification_hist_rows(filters) or ("", {})
    hist = wh.frame(
        f"SELECT channel, bin, sum(n) AS n FROM ({hsql}) GROUP BY ALL", hparams, fresh=False
    )
    per_channel = rollup.quantiles(hist, ["channel"])
    whole = rollup.quantiles(hist.with_columns(channel=pl.lit(None, pl.String)), ["channel"])
    q = pl.concat([per_channel, whole]).rename({"q0": "latency_median", "q1": "latency_p90"})
    frame = frame.with_columns(
        pl.col(*STATUSES).fill_null(0), latency_count=pl.col("latency_count").fill_null(0)
    ).join(q, on="channel", how="left", nulls_equal=True)
    return frame


def _exact(wh: Warehouse, filters: Filters) -> pl.DataFrame:
    where, params = filters.where("n", dimensions=())
    join = ""
    if filters.is_narrowed:
        dims, dim_params = filters.dims("a")
        join = "JOIN alerts a ON a.id = n.alert_id"
        where = f"{where} AND {dims}"
        params |= dim_params
    counts = ", ".join(f"count(*) FILTER (n.status = '{s}') AS {s}" for s in STATUSES)
    return wh.frame(
        f"""
        SELECT n.channel, count(*) AS notifications, {counts}, sum(n.attempts) AS attempts,
               {stats_sql("CASE WHEN n.status = 'sent' THEN n.latency_s END", "latency_")}
        FROM notifications n {join}
        WHERE {where}
        GROUP BY GROUPING SETS ((), (n.channel))
        ORDER BY n.channel NULLS FIRST
        """,
        params,
    )


def _shaped(row: dict[str, Any]) -> dict[str, Any]:
    n = row.get("notifications") or 0
    out = {
        "channel": row.get("channel"),
        "notifications": n,
        "by_status": {s: row.get(s) or 0 for s in STATUSES},
        "attempts": row.get("attempts") or 0,
        "failure_rate": share((row.get("failed") or 0) + (row.get("dead") or 0), n),
        "latency_s": {k: row.get(f"latency_{k}") for k in ("count", "mean", "median", "p90")},
    }
    if out["channel"] is None:
        del out["channel"]
    return out
