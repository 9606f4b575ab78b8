"""The dashboard: the period's KPIs in one scan, alerts per bucket, the noisiest rules, SLA and
delivery summaries. Every figure means what the per-metric endpoints say it means."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from engine.analytics import metrics, rollup
from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.frames import record, records, share
from engine.analytics.metrics import COLUMNS, stats_sql
from engine.analytics.rollup import AUTO, FALSE_POSITIVE
from engine.analytics.sla import sla
from engine.analytics.warehouse import Warehouse

TOP_RULES = 5


def dashboard(
    wh: Warehouse,
    filters: Filters,
    goals: dict[str, dict[str, int | None]],
    now: datetime | None = None,
) -> dict[str, Any]:
    kpis, series = _kpis_and_series(wh, filters)
    n = kpis.get("alerts") or 0
    rules = _top_rules(wh, filters)
    breaches = sla(wh, filters, goals, now=now)
    sent = delivery(wh, filters)
    return {
        "filters": filters.to_dict(),
        "kpis": {
            "alerts": n,
            "open": kpis.get("open") or 0,
            "occurrences": kpis.get("occurrences") or 0,
            "muted": kpis.get("muted") or 0,
            "auto_resolved": kpis.get("auto_resolved") or 0,
            "auto_resolved_share": share(kpis.get("auto_resolved"), n),
            "false_positives": kpis.get("false_positives") or 0,
            "false_positive_share": share(kpis.get("false_positives"), n),
            **{
                metric: {k: kpis.get(f"{metric}_{k}") for k in ("count", "mean", "median", "p90")}
                for metric in COLUMNS
            },
            "ack_breach_rate": breaches["total"]["ack_breach_rate"],
            "resolve_breach_rate": breaches["total"]["resolve_breach_rate"],
            "notifications": sent["total"]["notifications"],
            "delivery_failure_rate": sent["total"]["failure_rate"],
        },
        "series": records(_wide(series)),
        "top_rules": records(rules),
        "sla": breaches["severities"],
        "delivery": sent["channels"],
    }


def _wide(series: pl.DataFrame) -> pl.DataFrame:
    """One row per bucket: alerts in total and per severity."""
    if series.height == 0:
        return pl.DataFrame(schema={"bucket": pl.Datetime("us"), "alerts": pl.Int64})
    wide = series.pivot(on="severity", index="bucket", values="alerts").fill_null(0)
    severities = [c for c in ("critical", "high", "medium", "low", "info") if c in wide.columns]
    others = [c for c in wide.columns if c not in severities and c != "bucket"]
    return wide.select(
        "bucket", pl.sum_horizontal(*severities, *others).alias("alerts"), *severities, *others
    ).sort("bucket")


def _kpis_and_series(wh: Warehouse, filters: Filters) -> tuple[dict[str, Any], pl.DataFrame]:
    """The KPIs and alerts per (bucket, severity): from the rollups where they can answer."""
    rows = rollup.daily_rows(filters)
    if rows is None or not wh.rolled_up():
        return _exact_kpis_and_series(wh, filters)
    sql, params = rows
    durations = ", ".join(f"sum({m}_n) AS {m}_n, sum({m}_us) AS {m}_us" for m in _METRICS.values())
    kpis = record(
        wh.frame(
            f"""
            SELECT sum(alerts) AS alerts, sum(open) AS open, sum(occurrences) AS occurrences,
                   sum(auto_resolved) AS auto_resolved, sum(false_positives) AS false_positives,
                   sum(muted) AS muted, {durations}
            FROM ({sql})
            """,
            params,
        )
    )
    for metric, m in _METRICS.items():
        count = kpis.pop(f"{m}_n") or 0
        us = kpis.pop(f"{m}_us") or 0
        kpis[f"{metric}_count"] = count
        kpis[f"{metric}_mean"] = round(us / count / 1e6, 3) if count else None
    kpis |= _quantiles(wh, filters, kpis.get("alerts") or 0)
    series = wh.frame(
        f"""
        SELECT {filters.bucket_sql("day")} AS bucket, severity, sum(alerts)::BIGINT AS alerts
        FROM ({sql}) GROUP BY ALL HAVING sum(alerts) > 0 ORDER BY bucket, severity
        """,
        params,
        fresh=False,
    )
    return kpis, series


_METRICS = {metric: col[:3] for metric, col in COLUMNS.items()}


def _quantiles(wh: Warehouse, filters: Filters, alerts: int) -> dict[str, Any]:
    """Median and p90 of each metric: exact up to EXACT_MAX alerts, within 1% past it."""
    keys = [f"{metric}_{k}" for metric in COLUMNS for k in ("median", "p90")]
    hist = rollup.hist_rows(filters)
    if alerts <= metrics.EXACT_MAX or hist is None:
        where, params = filters.where()
        items = ", ".join(
            f"quantile_cont({col}, [0.5, 0.9]) AS {metric}_q" for metric, col in COLUMNS.items()
        )
        row = wh.frame(f"SELECT {items} FROM alerts WHERE {where}", params, fresh=False).row(
            0, named=True
        )
        out = {}
        for metric in COLUMNS:
            both = row[f"{metric}_q"] or [None, None]
            out[f"{metric}_median"], out[f"{metric}_p90"] = both
        return record(pl.DataFrame([out], schema=dict.fromkeys(keys, pl.Float64)))
    sql, params = hist
    frame = wh.frame(
        f"SELECT metric, bin, sum(n) AS n FROM ({sql}) GROUP BY ALL", params, fresh=False
    )
    found = {r["metric"]: r for r in rollup.quantiles(frame, ["metric"]).iter_rows(named=True)}
    out = {}
    for metric, m in _METRICS.items():
        r = found.get(m, {})
        out[f"{metric}_median"], out[f"{metric}_p90"] = r.get("q0"), r.get("q1")
    return record(pl.DataFrame([out], schema=dict.fromkeys(keys, pl.Float64)))


def _exact_kpis_and_series(wh: Warehouse, filters: Filters) -> tuple[dict[str, Any], pl.DataFrame]:
    where, params = filters.where()
    stats = ", ".join(stats_sql(col, f"{metric}_") for metric, col in COLUMNS.items())
    kpis = record(
        wh.frame(
            f"""
            SELECT count(*) AS alerts, count(*) FILTER (is_open) AS open,
                   sum(occurrences) AS occurrences, count(*) FILTER ({AUTO}) AS auto_resolved,
                   count(*) FILTER ({FALSE_POSITIVE}) AS false_positives,
                   count(*) FILTER (is_muted) AS muted, {stats}
            FROM alerts WHERE {where}
            """,
            params,
        )
    )
    bucket = filters.bucket_sql("created_at")
    series = wh.frame(
        f"""
        SELECT {bucket} AS bucket, severity, count(*) AS alerts
        FROM alerts WHERE {where} GROUP BY ALL ORDER BY bucket, severity
        """,
        params,
        fresh=False,
    )
    return kpis, series


def _top_rules(wh: Warehouse, filters: Filters) -> pl.DataFrame:
    rows = rollup.daily_rows(filters, "rule")
    if rows is not None and wh.rolled_up():
        sql, params = rows
        return wh.frame(
            f"""
            SELECT value AS rule, sum(alerts) AS alerts, sum(occurrences) AS occurrences,
                   sum(auto_resolved) AS auto_resolved
            FROM ({sql}) GROUP BY value HAVING sum(alerts) > 0
            ORDER BY alerts DESC, rule LIMIT {TOP_RULES}
            """,
            params,
            fresh=False,
        )
    where, params = filters.where()
    return wh.frame(
        f"""
        SELECT rule, count(*) AS alerts, sum(occurrences) AS occurrences,
               count(*) FILTER ({AUTO}) AS auto_resolved
        FROM alerts WHERE {where} GROUP BY rule ORDER BY alerts DESC, rule LIMIT {TOP_RULES}
        """,
        params,
        fresh=False,
    )
