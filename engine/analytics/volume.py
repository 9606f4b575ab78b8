"""Volume over time (DESIGN.md §7): alerts per bucket by source, severity, service, team or rule,
and the events behind them per bucket by source."""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.analytics import rollup
from engine.analytics.filters import Filters, dimension
from engine.analytics.frames import records, share
from engine.analytics.warehouse import Warehouse

# Events have no team or rule: those filters do not apply to them.
EVENT_DIMENSIONS = ("service", "severity", "source")


def volume(wh: Warehouse, filters: Filters, by: str | None = "source") -> dict[str, Any]:
    """Alerts (and their occurrences) per bucket and `by` value; events per bucket and source."""
    by = dimension(by) or "source"
    rows = rollup.daily_rows(filters, by)
    if rows is not None and wh.rolled_up():
        sql, params = rows
        value = "severity" if by == "severity" else "value"
        frame = wh.frame(
            f"""
            SELECT {filters.bucket_sql("day")} AS bucket, coalesce({value}, '') AS {by},
                   sum(alerts) AS alerts, sum(occurrences) AS occurrences
            FROM ({sql}) GROUP BY ALL HAVING sum(alerts) > 0
            ORDER BY bucket, alerts DESC, {by}
            """,
            params,
        )
    else:
        where, params = filters.where()
        bucket = filters.bucket_sql("created_at")
        frame = wh.frame(
            f"""
            SELECT {bucket} AS bucket, coalesce({by}, '') AS {by}, count(*) AS alerts,
                   sum(occurrences) AS occurrences
            FROM alerts WHERE {where}
            GROUP BY ALL ORDER BY bucket, alerts DESC, {by}
            """,
            params,
        )
    totals = (
        frame.lazy()
        .group_by(by)
        .agg(pl.col("alerts").sum(), pl.col("occurrences").sum())
        .sort(["alerts", by], descending=[True, False])
        .collect()
    )
    n_alerts = int(frame["alerts"].sum())
    n_occ = int(frame["occurrences"].sum())
    ev_where, ev_params = filters.where(time_column="ts", dimensions=EVENT_DIMENSIONS)
    events = wh.frame(
        f"""
        SELECT {filters.bucket_sql("ts")} AS bucket, source, count(*) AS events
        FROM events WHERE {ev_where}
        GROUP BY ALL ORDER BY bucket, events DESC, source
        """,
        ev_params,
        fresh=False,
    )
    return {
        "filters": filters.to_dict(),
        "by": by,
        "alerts": n_alerts,
        "occurrences": n_occ,
        "occurrences_per_alert": share(n_occ, n_alerts),
        "events": int(events["events"].sum()),
        "series": records(frame),
        "totals": records(totals),
        "events_series": records(events),
    }
