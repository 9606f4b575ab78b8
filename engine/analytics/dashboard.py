"""The dashboard: the period's KPIs in one scan, alerts per bucket, the noisiest rules, SLA and
delivery summaries. Every figure means what the per-metric endpoints say it means."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.frames import record, records, share
from engine.analytics.metrics import COLUMNS, stats_sql
from engine.analytics.noise import AUTO, FALSE_POSITIVE
from engine.analytics.sla import sla
from engine.analytics.warehouse import Warehouse

TOP_RULES = 5


def dashboard(
    wh: Warehouse,
    filters: Filters,
    goals: dict[str, dict[str, int | None]],
    now: datetime | None = None,
) -> dict[str, Any]:
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
    n = kpis.get("alerts") or 0
    bucket = filters.bucket_sql("created_at")
    series = wh.frame(
        f"""
        SELECT {bucket} AS bucket, severity, count(*) AS alerts
        FROM alerts WHERE {where} GROUP BY ALL ORDER BY bucket, severity
        """,
        params,
        fresh=False,
    )
    rules = wh.frame(
        f"""
        SELECT rule, count(*) AS alerts, sum(occurrences) AS occurrences,
               count(*) FILTER ({AUTO}) AS auto_resolved
        FROM alerts WHERE {where} GROUP BY rule ORDER BY alerts DESC, rule LIMIT {TOP_RULES}
        """,
        params,
        fresh=False,
    )
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
