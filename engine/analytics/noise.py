"""Where the noise comes from (DESIGN.md §7): noisy rules and fingerprints, alerts nobody had to
touch, false positives, and flapping.

- auto-resolved without acknowledgement: resolved by Klaxon's rules (`resolved_by = 'klaxon'`,
  resolution `auto`) and never acknowledged;
- false positive: resolved with the reason `false_positive`;
- flapping: a (rule, key) that fired at least `min_fires` times within `window_s` seconds. Each
  new alert of a (rule, key) is a fire: the one before it was resolved first.
Shares are of the alerts created in the period.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.analytics import flaps, rollup
from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import Filters
from engine.analytics.frames import record, records, share
from engine.analytics.rollup import AUTO, FALSE_POSITIVE
from engine.analytics.warehouse import Warehouse

MAX_LIMIT = 1000


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise AnalyticsQueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def noise(wh: Warehouse, filters: Filters, limit: int = 10) -> dict[str, Any]:
    """Totals, the noisiest rules and fingerprints (by alerts, then occurrences)."""
    limit = _limit(limit)
    where, params = filters.where()
    counts = f"""count(*) AS alerts, sum(occurrences) AS occurrences,
        count(*) FILTER ({AUTO}) AS auto_resolved,
        count(*) FILTER ({FALSE_POSITIVE}) AS false_positives,
        count(acknowledged_at) AS acknowledged"""
    totals_rows, rules_rows = rollup.daily_rows(filters), rollup.daily_rows(filters, "rule")
    if totals_rows is not None and rules_rows is not None and wh.rolled_up():
        summed = """sum(alerts) AS alerts, sum(occurrences) AS occurrences,
            sum(auto_resolved) AS auto_resolved, sum(false_positives) AS false_positives,
            sum(acknowledged) AS acknowledged"""
        totals = record(wh.frame(f"SELECT {summed} FROM ({totals_rows[0]})", totals_rows[1]))
        rules = wh.frame(
            f"""
            SELECT value AS rule, {summed} FROM ({rules_rows[0]})
            GROUP BY value HAVING sum(alerts) > 0
            ORDER BY alerts DESC, occurrences DESC, rule LIMIT {limit}
            """,
            rules_rows[1],
            fresh=False,
        )
    else:
        totals = record(wh.frame(f"SELECT {counts} FROM alerts WHERE {where}", params))
        rules = wh.frame(
            f"""
            SELECT rule, {counts} FROM alerts WHERE {where}
            GROUP BY rule ORDER BY alerts DESC, occurrences DESC, rule LIMIT {limit}
            """,
            params,
            fresh=False,
        )
    # Counting first and describing only the top fingerprints afterwards: the title and rules
    # of every fingerprint in the period would cost most of the query (5x on 1M alerts).
    from_sidecars = _fingerprint_sql(wh, filters, limit)
    if from_sidecars is not None:
        fingerprints = wh.frame(*from_sidecars, fresh=False)
    else:
        fingerprints = _fingerprints(wh, where, params, counts, limit)
    n = totals.get("alerts") or 0
    return {
        "filters": filters.to_dict(),
        "alerts": n,
        "occurrences": totals.get("occurrences") or 0,
        "auto_resolved": totals.get("auto_resolved") or 0,
        "auto_resolved_share": share(totals.get("auto_resolved"), n),
        "false_positives": totals.get("false_positives") or 0,
        "false_positive_share": share(totals.get("false_positives"), n),
        "rules": [_shares(r) for r in records(rules)],
        "fingerprints": [_shares(r) for r in records(fingerprints)],
    }


def _fingerprint_sql(
    wh: Warehouse, filters: Filters, limit: int
) -> tuple[str, dict[str, Any]] | None:
    """rollup.fingerprint_sql over one manifest's files, with the partitions the period's whole
    days hold read from their whole-file sidecars; None when the sidecars cannot answer."""
    days_of = rollup.whole_days(filters)
    if rollup.fingerprint_sql(filters, limit) is None or days_of is None:
        return None
    files = wh.files("alerts")
    if not files.rolled_up:
        return None
    d0, d1 = days_of
    whole_files = {p: files.sidecar(p, "fpfile") for p in files.parts}
    spans = wh.spans(list(whole_files.values()), "first_created", "last_created")
    inside = {f for f, (a, b) in spans.items() if d0 <= a and b < d1}
    whole = [f for f in whole_files.values() if f in inside]
    days = [files.sidecar(p, "fp") for p, f in whole_files.items() if f not in inside]
    if files.delta is not None:
        days.append(files.sidecar(files.delta, "fp"))
    return rollup.fingerprint_sql(filters, limit, whole, days, f"({files.sql})")


def _fingerprints(
    wh: Warehouse, where: str, params: dict[str, Any], counts: str, limit: int
) -> pl.DataFrame:
    return wh.frame(
        f"""
        WITH top AS (
            SELECT fingerprint, {counts} FROM alerts WHERE {where}
            GROUP BY fingerprint ORDER BY alerts DESC, occurrences DESC, fingerprint
            LIMIT {limit}
        ),
        described AS (
            SELECT fingerprint, any_value(rule) AS rule, arg_max(title, created_at) AS title,
                   count(DISTINCT rule) AS rules
            FROM alerts WHERE {where} AND fingerprint IN (SELECT fingerprint FROM top)
            GROUP BY fingerprint
        )
        SELECT t.fingerprint, d.rule, d.title, d.rules, t.* EXCLUDE (fingerprint)
        FROM top t JOIN described d USING (fingerprint)
        ORDER BY alerts DESC, occurrences DESC, fingerprint
        """,
        params,
        fresh=False,
    )


def _shares(row: dict[str, Any]) -> dict[str, Any]:
    row["auto_resolved_share"] = share(row["auto_resolved"], row["alerts"])
    row["false_positive_share"] = share(row["false_positives"], row["alerts"])
    return row


def flapping(
    wh: Warehouse,
    filters: Filters,
    *,
    min_fires: int = 3,
    window_s: int = flaps.FLAP_WINDOW_S,
    limit: int = 50,
) -> dict[str, Any]:
    """(rule, key)s that fired at least `min_fires` times within `window_s`, most fires first.

    Per (rule, key): `fires` in the period, `max_in_window` (the most fires in any window of
    `window_s` ending at a fire), and the first and last fire.
    """
    limit = _limit(limit)
    if not 2 <= min_fires <= 1000:
        raise AnalyticsQueryError("min_fires", "min_fires must be between 2 and 1000")
    if not 1 <= window_s <= 90 * 86400:
        raise AnalyticsQueryError("window", "the window must be between 1 second and 90 days")
    from_sidecars = flaps.top_series(
        wh, filters, min_fires=min_fires, window_s=window_s, limit=limit
    )
    if from_sidecars is not None:
        return {
            "filters": filters.to_dict(),
            "min_fires": min_fires,
            "window_s": window_s,
            "series": records(from_sidecars),
        }
    where, params = filters.where()
    params |= {"window_us": window_s * 1_000_000}
    # Stage 1 finds flapping series cheaply: the fire min_fires−1 before this one is within the
    # window. Stage 2 counts fires per window only for those.
    frame = wh.frame(
        f"""
        WITH period AS (SELECT series, rule, key, title, created_at FROM alerts WHERE {where}),
        lagged AS (
            SELECT series, date_diff(
                       'microsecond', lag(created_at, {min_fires - 1}) OVER w, created_at
                   ) AS span
            FROM period WINDOW w AS (PARTITION BY series ORDER BY created_at)
        ),
        flappy AS (SELECT DISTINCT series FROM lagged WHERE span <= $window_us),
        windows AS (
            SELECT p.*, count(*) OVER (
                PARTITION BY p.series ORDER BY p.created_at
                RANGE BETWEEN to_microseconds($window_us) PRECEDING AND CURRENT ROW
            ) AS in_window
            FROM period p SEMI JOIN flappy f ON p.series = f.series
        )
        SELECT any_value(rule) AS rule, any_value(key) AS key, arg_max(title, created_at) AS title,
               count(*) AS fires, max(in_window) AS max_in_window,
               min(created_at) AS first_fire, max(created_at) AS last_fire
        FROM windows GROUP BY series
        ORDER BY max_in_window DESC, fires DESC, rule, key
        LIMIT {limit}
        """,
        params,
    )
    return {
        "filters": filters.to_dict(),
        "min_fires": min_fires,
        "window_s": window_s,
        "series": records(frame),
    }
