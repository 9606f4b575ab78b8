"""SLA breaches against per-severity targets (settings key "analytics.sla").

A target is {"ack_s": seconds, "resolve_s": seconds}; either may be null (no target).
- acknowledge breach: the alert was not acknowledged (or resolved) within `ack_s` of its
  creation; one still open and unacknowledged past the target at `now` has breached too;
- resolve breach: not resolved within `resolve_s` (open ones are measured at `now`).
Silenced or inhibited alerts page nobody and are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, insert, select, update

from engine.analytics import rollup
from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import SEVERITIES, Filters, dimension, naive
from engine.analytics.frames import records, share
from engine.analytics.warehouse import Warehouse
from engine.auth import audit
from engine.auth.principal import Principal
from engine.store.db import orm
from engine.store.models import Setting

SETTING_KEY = "analytics.sla"
DEFAULT_TARGETS: dict[str, dict[str, int | None]] = {
    "critical": {"ack_s": 5 * 60, "resolve_s": 60 * 60},
    "high": {"ack_s": 15 * 60, "resolve_s": 4 * 3600},
    "medium": {"ack_s": 60 * 60, "resolve_s": 24 * 3600},
    "low": {"ack_s": 4 * 3600, "resolve_s": 3 * 86400},
    "info": {"ack_s": None, "resolve_s": None},
}


def targets(conn: Connection) -> dict[str, dict[str, int | None]]:
    """The configured targets, the defaults filling in what is not set."""
    row = orm(conn).scalars(select(Setting).where(Setting.key == SETTING_KEY)).one_or_none()
    stored = row.value if row is not None and isinstance(row.value, dict) else {}
    return {s: {**DEFAULT_TARGETS[s], **(stored.get(s) or {})} for s in SEVERITIES}


def check_targets(value: Any) -> dict[str, dict[str, int | None]]:
    """Validate targets given by a person; the error names the field (`critical.ack_s`)."""
    if not isinstance(value, dict):
        raise AnalyticsQueryError("targets", "targets must be an object keyed by severity")
    out: dict[str, dict[str, int | None]] = {}
    for severity, target in value.items():
        if severity not in SEVERITIES:
            raise AnalyticsQueryError(
                str(severity), f"unknown severity {severity!r}; choose from {', '.join(SEVERITIES)}"
            )
        if not isinstance(target, dict):
            raise AnalyticsQueryError(severity, f"{severity}: give {{'ack_s': N, 'resolve_s': N}}")
        clean: dict[str, int | None] = {}
        for name, seconds in target.items():
            field = f"{severity}.{name}"
            if name not in ("ack_s", "resolve_s"):
                raise AnalyticsQueryError(
                    field, f"unknown target {name!r}; use ack_s and resolve_s"
                )
            if seconds is not None and (
                isinstance(seconds, bool)
                or not isinstance(seconds, int)
                or not 1 <= seconds <= 365 * 86400
            ):
                raise AnalyticsQueryError(
                    field, f"{field} must be a whole number of seconds (1 to a year) or null"
                )
            clean[name] = seconds
        out[severity] = clean
    return out


def save_targets(
    conn: Connection, actor: Principal, value: Any
) -> dict[str, dict[str, int | None]]:
    """Store targets (merged over the current ones) and audit the change."""
    actor.require("reports.write")
    given = check_targets(value)
    before = targets(conn)
    after = {s: {**before[s], **given.get(s, {})} for s in SEVERITIES}
    now = datetime.now(UTC)
    exists = orm(conn).scalars(select(Setting).where(Setting.key == SETTING_KEY)).one_or_none()
    if exists is None:
        conn.execute(
            insert(Setting).values(
                key=SETTING_KEY, value=after, updated_at=now, updated_by=actor.name
            )
        )
    else:
        conn.execute(
            update(Setting)
            .where(Setting.key == SETTING_KEY)
            .values(value=after, updated_at=now, updated_by=actor.name)
        )
    audit.record(
        conn, actor, "analytics.sla.update", "setting", SETTING_KEY, before=before, after=after
    )
    return after


def sla(
    wh: Warehouse,
    filters: Filters,
    goals: dict[str, dict[str, int | None]],
    *,
    by: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Breaches per severity (and per `by` value), with the targets they were measured against."""
    by = dimension(by)
    where, params = filters.where("a")
    frame_targets = pl.DataFrame(
        {
            "t_severity": list(SEVERITIES),
            "ack_target_s": [goals[s]["ack_s"] for s in SEVERITIES],
            "resolve_target_s": [goals[s]["resolve_s"] for s in SEVERITIES],
        },
        schema={"t_severity": pl.String, "ack_target_s": pl.Int64, "resolve_target_s": pl.Int64},
    )
    params["now"] = naive(now or datetime.now(UTC))
    group = ["severity"] + ([by] if by and by != "severity" else [])
    rolled = _rolled_up(wh, filters, goals, by, params["now"])
    frame = (
        rolled
        if rolled is not None
        else wh.frame(
            f"""
        WITH measured AS (
            SELECT a.*, t.ack_target_s, t.resolve_target_s,
                   date_diff('microsecond', created_at,
                             coalesce(acknowledged_at, resolved_at, $now)) / 1e6 AS to_ack_s,
                   date_diff('microsecond', created_at,
                             coalesce(resolved_at, $now)) / 1e6 AS to_resolve_s
            FROM alerts a JOIN targets t ON a.severity = t.t_severity
            WHERE {where} AND NOT a.is_muted
        )
        SELECT {", ".join(group)}, any_value(ack_target_s) AS ack_target_s,
               any_value(resolve_target_s) AS resolve_target_s, count(*) AS alerts,
               count(*) FILTER (to_ack_s > ack_target_s) AS ack_breaches,
               count(*) FILTER (to_resolve_s > resolve_target_s) AS resolve_breaches
        FROM measured GROUP BY {", ".join(group)}
        """,
            params,
            targets=frame_targets,
        )
    )
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    rows = sorted(
        records(frame), key=lambda r: (rank[r["severity"]], *(str(r.get(g)) for g in group[1:]))
    )
    for r in rows:
        _rates(r)
    total = {
        "alerts": sum(r["alerts"] for r in rows),
        "ack_breaches": sum(r["ack_breaches"] for r in rows),
        "resolve_breaches": sum(r["resolve_breaches"] for r in rows),
    }
    out: dict[str, Any] = {
        "filters": filters.to_dict(),
        "targets": goals,
        "total": _rates(total),
        "severities": rows if not by or by == "severity" else _by_severity(rows),
    }
    if by and by != "severity":
        out["by"] = by
        out["groups"] = rows
    return out


def _rolled_up(
    wh: Warehouse,
    filters: Filters,
    goals: dict[str, dict[str, int | None]],
    by: str | None,
    now: datetime,
) -> pl.DataFrame | None:
    """The breach counts from the rollups (written for these targets), or None.

    Resolved alerts' breaches are counted in the daily rollups; unresolved ones depend on
    `now` and are measured here from `alerts_open`, the unresolved unmuted rows of each file.
    """
    targets = {s: goals[s] for s in SEVERITIES}
    rows = rollup.daily_rows(filters, by, targets)
    if rows is None or wh.sla_targets() != targets:
        return None
    sql, params = rows
    other = by if by and by != "severity" else None
    value = ", value AS by_value" if other else ""
    closed = wh.frame(
        f"""
        SELECT severity{value}, sum(sla_alerts) AS alerts, sum(ack_breaches) AS ack_breaches,
               sum(resolve_breaches) AS resolve_breaches
        FROM ({sql}) GROUP BY ALL
        """,
        params,
    )
    where, oparams = filters.where()
    to_ack = "date_diff('microsecond', created_at, coalesce(acknowledged_at, $now)) / 1e6"
    to_resolve = "date_diff('microsecond', created_at, $now) / 1e6"
    known = ", ".join(repr(s) for s in SEVERITIES)
    opened = wh.frame(
        f"""
        SELECT severity{f", {other} AS by_value" if other else ""}, 0 AS alerts,
               coalesce(sum(sign) FILTER ({to_ack} > {rollup.target_case(targets, "ack_s")}), 0)
                   AS ack_breaches,
               coalesce(sum(sign) FILTER (
                   {to_resolve} > {rollup.target_case(targets, "resolve_s")}), 0)
                   AS resolve_breaches
        FROM alerts_open WHERE {where} AND severity IN ({known}) GROUP BY ALL
        """,
        oparams | {"now": now},
        fresh=False,
    )
    keys = ["severity"] + (["by_value"] if other else [])
    both = pl.concat([closed, opened.cast(closed.schema)])
    summed = (
        both.group_by(keys, maintain_order=True)
        .agg(pl.col("alerts", "ack_breaches", "resolve_breaches").sum())
        .filter(pl.col("alerts") > 0)
    )
    summed = summed.with_columns(
        ack_target_s=pl.col("severity").replace_strict(
            {s: targets[s]["ack_s"] for s in SEVERITIES}, return_dtype=pl.Int64
        ),
        resolve_target_s=pl.col("severity").replace_strict(
            {s: targets[s]["resolve_s"] for s in SEVERITIES}, return_dtype=pl.Int64
        ),
    )
    if other:
        summed = summed.rename({"by_value": other})
    group = ["severity"] + ([other] if other else [])
    return summed.select(
        *group, "ack_target_s", "resolve_target_s", "alerts", "ack_breaches", "resolve_breaches"
    )


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    row["ack_breach_rate"] = share(row["ack_breaches"], row["alerts"])
    row["resolve_breach_rate"] = share(row["resolve_breaches"], row["alerts"])
    return row


def _by_severity(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(
            r["severity"],
            {
                "severity": r["severity"],
                "ack_target_s": r["ack_target_s"],
                "resolve_target_s": r["resolve_target_s"],
                "alerts": 0,
                "ack_breaches": 0,
                "resolve_breaches": 0,
            },
        )
        for k in ("alerts", "ack_breaches", "resolve_breaches"):
            s[k] += r[k]
    return [_rates(v) for v in out.values()]
