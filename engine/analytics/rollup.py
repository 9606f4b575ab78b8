"""Per-day rollups of the alerts snapshot, written next to each Parquet file at refresh time.

Every alerts partition `p…-g….parquet` gets sidecars computed from that file alone, among them:

    p…-g….daily.parquet   per (day, severity, dim, value): counts and duration sums
    p…-g….hist.parquet    per (day, severity, metric, bin): how many durations fell in a bin
    p…-g….slots.parquet   per (15-minute slot, team): alerts, acknowledged, unmuted (team load)
    p…-g….people.parquet  per (day, team, who): alerts acknowledged and resolved by who

`dim` is "" (all alerts of the day and severity) or one of team, service, source, rule, with
`value` the alert's value of it. The delta gets the same sidecars, holding the delta's rows
*minus* the rows of the partitions it replaces (negative counts), so that the sum over every
sidecar equals the rollup of the table DuckDB sees, after any number of refreshes. Sums of
durations are whole microseconds, so means are exact.

A query over [start, end) takes whole days from the rollups and the partial days at either end
from the alerts themselves (`daily_rows`, `hist_rows`). A question with more than one dimension
besides severity (a filter on team and a grouping by rule, say) has no rollup: the caller falls
back to the exact query (`None`).

Histograms use DDSketch's log buckets: bin i holds durations in (γ^(i-1), γ^i] with
γ = (1+α)/(1-α), and stands for 2γ^i/(γ+1), within α = 1% of every value in it; 0 has a bin of
its own. A median or p90 read from them (`quantiles`) is within 1% of the exact one (the
interpolation between the two closest ranks is a convex combination of values each within 1%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.analytics.filters import DIMENSIONS, Filters, naive
from engine.analytics.flaps import FLAP_SCHEMA, flap_rollup, local_sql
from engine.analytics.paths import parquet_list

AUTO = "resolved_by = 'klaxon' AND resolution = 'auto' AND acknowledged_at IS NULL"
FALSE_POSITIVE = "resolution = 'false_positive'"

ROLLUP_VERSION = 5  # what the sidecars hold; snapshots with another are rolled up again
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
ZERO_BIN = -(2**31)
METRICS = {"tta": "tta_s", "ttr": "ttr_s", "ttd": "ttd_s"}
ROLLUP_DIMS = tuple(d for d in DIMENSIONS if d != "severity")  # team, service, source, rule

Targets = dict[str, dict[str, int | None]]

# The rollup's measures, as aggregates over alerts rows.
BASE_MEASURES = (
    "count(*) AS alerts",
    "coalesce(sum(occurrences), 0)::BIGINT AS occurrences",
    "count(*) FILTER (is_open) AS open",
    "count(*) FILTER (is_muted) AS muted",
    f"count(*) FILTER ({AUTO}) AS auto_resolved",
    f"count(*) FILTER ({FALSE_POSITIVE}) AS false_positives",
    "count(acknowledged_at) AS acknowledged",
    *(
        item
        for m, col in METRICS.items()
        for item in (
            f"count({col}) AS {m}_n",
            f"coalesce(sum(round({col} * 1e6)::BIGINT), 0)::BIGINT AS {m}_us",
        )
    ),
)
SLA_NAMES = ("sla_alerts", "ack_breaches", "resolve_breaches")


def target_case(targets: Targets, key: str) -> str:
    """A severity's target (seconds) as SQL; NULL (no breach) where there is none."""
    whens = " ".join(
        f"WHEN '{s}' THEN {t[key] if t.get(key) is not None else 'NULL'}"
        for s, t in targets.items()
    )
    return f"CASE severity {whens} ELSE NULL END"


def sla_measures(targets: Targets | None) -> tuple[str, ...]:
    """SLA counts for the targets the rollups were written with (engine/analytics/sla.py):
    alerts not muted, and breaches of resolved ones (open ones depend on `now`: alerts_open)."""
    if targets is None:
        return tuple(f"0::BIGINT AS {n}" for n in SLA_NAMES)
    known = f"NOT is_muted AND severity IN ({', '.join(repr(s) for s in targets)})"
    closed = f"{known} AND resolved_at IS NOT NULL"
    to_ack = "date_diff('microsecond', created_at, coalesce(acknowledged_at, resolved_at)) / 1e6"
    to_resolve = "date_diff('microsecond', created_at, resolved_at) / 1e6"
    return (
        f"count(*) FILTER ({known}) AS sla_alerts",
        f"count(*) FILTER ({closed} AND {to_ack} > {target_case(targets, 'ack_s')}) "
        "AS ack_breaches",
        f"count(*) FILTER ({closed} AND {to_resolve} > {target_case(targets, 'resolve_s')}) "
        "AS resolve_breaches",
    )


def measures(targets: Targets | None) -> tuple[str, ...]:
    return BASE_MEASURES + sla_measures(targets)


MEASURE_NAMES = tuple(m.rsplit(" AS ", 1)[1] for m in BASE_MEASURES) + SLA_NAMES
OPEN_COLUMNS = ("created_at", "acknowledged_at", "severity", "team", "service", "source", "rule")

BIN_SQL = f"CASE WHEN x <= 0 THEN {ZERO_BIN} ELSE ceil(ln(x) / {math.log(GAMMA)!r})::INTEGER END"
_HIST_SOURCE = " UNION ALL ".join(
    f"SELECT created_at, severity, '{m}' AS metric, {col} AS x FROM {{table}} "
    f"WHERE {col} IS NOT NULL AND {{where}}"
    for m, col in METRICS.items()
)

DAILY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "severity": pl.String(),
    "dim": pl.String(),
    "value": pl.String(),
    **dict.fromkeys(MEASURE_NAMES, pl.Int64()),
}
OPEN_SCHEMA: dict[str, pl.DataType] = {
    "created_at": pl.Datetime("us"),
    "acknowledged_at": pl.Datetime("us"),
    "severity": pl.String(),
    "team": pl.String(),
    "service": pl.String(),
    "source": pl.String(),
    "rule": pl.String(),
    "sign": pl.Int64(),
}
FP_COUNTS = ("alerts", "occurrences", "auto_resolved", "false_positives", "acknowledged")
FP_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "fingerprint": pl.String(),
    "rule": pl.String(),
    **dict.fromkeys(FP_COUNTS, pl.Int64()),
    "last_created": pl.Datetime("us"),
    "title": pl.String(),
    "sign": pl.Int64(),  # -1: the rows a delta replaces (their title is not a candidate)
    "newer": pl.Int64(),  # 0 partition, 1 delta: on equal times the delta's title is current
}
FP_ITEMS = (
    "count(*) AS alerts",
    "coalesce(sum(occurrences), 0)::BIGINT AS occurrences",
    f"count(*) FILTER ({AUTO}) AS auto_resolved",
    f"count(*) FILTER ({FALSE_POSITIVE}) AS false_positives",
    "count(acknowledged_at) AS acknowledged",
    "max(created_at) AS last_created",
    "arg_max(title, created_at) AS title",
)

# The same per (fingerprint, rule) over the whole file, for partitions a period holds whole.
FP_FILE_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in FP_SCHEMA.items() if k != "day"},
    "first_created": pl.Datetime("us"),
}

HIST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "severity": pl.String(),
    "metric": pl.String(),
    "bin": pl.Int32(),
    "n": pl.Int64(),
}
SLOT_COUNTS = ("alerts", "acknowledged", "unmuted")
SLOT_SCHEMA: dict[str, pl.DataType] = {
    "slot": pl.Datetime("us"),
    "team": pl.String(),
    **dict.fromkeys(SLOT_COUNTS, pl.Int64()),
}
# Alerts per (15-minute slot, team) as teams.team_load counts them ('' for no team).
SLOT_SELECT = (
    "SELECT time_bucket(INTERVAL 15 minutes, created_at) AS slot, coalesce(team, '') AS team, "
    "count(*) AS alerts, count(acknowledged_at) AS acknowledged, "
    "count(*) FILTER (NOT is_muted) AS unmuted FROM {table} WHERE {where} GROUP BY ALL"
)

PEOPLE_COUNTS = ("acknowledged", "resolved")
PEOPLE_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "team": pl.String(),
    "who": pl.String(),
    **dict.fromkeys(PEOPLE_COUNTS, pl.Int64()),
}
# Alerts acknowledged and resolved per (day, team, who), as teams._people counts them.
PEOPLE_SELECT = (
    "SELECT date_trunc('day', created_at) AS day, coalesce(team, '') AS team, who, "
    "sum(acknowledged)::BIGINT AS acknowledged, sum(resolved)::BIGINT AS resolved FROM ("
    "SELECT created_at, team, acknowledged_by AS who, 1 AS acknowledged, 0 AS resolved "
    "FROM {table} WHERE acknowledged_by IS NOT NULL AND {where} UNION ALL "
    "SELECT created_at, team, resolved_by AS who, 0 AS acknowledged, 1 AS resolved "
    "FROM {table} WHERE resolved_by IS NOT NULL AND {where}) GROUP BY ALL"
)


# ---------------------------------------------------------------- writing (at refresh)


def _sets() -> str:
    day = "date_trunc('day', created_at)"
    return ", ".join([f"({day}, severity)"] + [f"({day}, severity, {d})" for d in ROLLUP_DIMS])


def _dim_case() -> tuple[str, str]:
    dim = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN '{d}'" for d in ROLLUP_DIMS)
    value = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN {d}" for d in ROLLUP_DIMS)
    return f"{dim} ELSE '' END", f"{value} END"


Rollups = tuple[pl.DataFrame, ...]


def rollups(frame: pl.DataFrame, targets: Targets | None) -> Rollups:
    """(daily, hist, open, fp, slots, people, flap, fpfile) rollups of alerts rows; `open`: the
    unresolved, unmuted rows."""
    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")
    try:
        con.register("a", frame)
        dim, value = _dim_case()
        daily = con.sql(
            f"""
            SELECT date_trunc('day', created_at) AS day, severity, {dim} AS dim,
                   {value} AS value, {", ".join(measures(targets))}
            FROM a GROUP BY GROUPING SETS ({_sets()})
            """
        ).pl()
        hist = con.sql(
            f"""
            SELECT date_trunc('day', created_at) AS day, severity, metric, {BIN_SQL} AS bin,
                   count(*) AS n
            FROM ({_HIST_SOURCE.format(table="a", where="TRUE")}) GROUP BY ALL
            """
        ).pl()
        fingerprints = con.sql(
            f"""
            SELECT date_trunc('day', created_at) AS day, fingerprint, rule, {", ".join(FP_ITEMS)},
                   1 AS sign, 0 AS newer
            FROM a GROUP BY ALL
            """
        ).pl()
        slots = con.sql(SLOT_SELECT.format(table="a", where="TRUE")).pl()
        acted = con.sql(PEOPLE_SELECT.format(table="a", where="TRUE")).pl()
        flaps = con.sql(local_sql("a")).pl()
        fp_file = con.sql(
            f"""
            SELECT fingerprint, rule, {", ".join(FP_ITEMS)}, 1 AS sign, 0 AS newer,
                   min(created_at) AS first_created
            FROM a GROUP BY ALL
            """
        ).pl()
    finally:
        con.close()
    unresolved = frame.filter(pl.col("resolved_at").is_null() & ~pl.col("is_muted"))
    open_rows = unresolved.select(*OPEN_COLUMNS, sign=pl.lit(1, dtype=pl.Int64))
    return (
        daily.cast(DAILY_SCHEMA).select(list(DAILY_SCHEMA)),
        hist.cast(HIST_SCHEMA).select(list(HIST_SCHEMA)),
        open_rows.cast(pl.Schema(OPEN_SCHEMA)).select(list(OPEN_SCHEMA)),
        fingerprints.cast(pl.Schema(FP_SCHEMA)).select(list(FP_SCHEMA)),
        slots.cast(pl.Schema(SLOT_SCHEMA)).select(list(SLOT_SCHEMA)),
        acted.cast(pl.Schema(PEOPLE_SCHEMA)).select(list(PEOPLE_SCHEMA)),
        flaps.cast(pl.Schema(FLAP_SCHEMA)).select(list(FLAP_SCHEMA)),
        fp_file.cast(pl.Schema(FP_FILE_SCHEMA)).select(list(FP_FILE_SCHEMA)),
    )


NOTE_MEASURES = (
    "count(*) AS notifications",
    "coalesce(sum(attempts), 0)::BIGINT AS attempts",
    "count(latency_s) FILTER (status = 'sent') AS lat_n",
    "coalesce(sum(round(latency_s * 1e6)::BIGINT) FILTER (status = 'sent'), 0)::BIGINT AS lat_us",
)
NOTE_NAMES = tuple(m.rsplit(" AS ", 1)[1] for m in NOTE_MEASURES)
NOTE_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "channel": pl.String(),
    "status": pl.String(),
    **dict.fromkeys(NOTE_NAMES, pl.Int64()),
}
NOTE_HIST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Datetime("us"),
    "channel": pl.String(),
    "bin": pl.Int32(),
    "n": pl.Int64(),
}
_NOTE_HIST = (
    f"SELECT date_trunc('day', created_at) AS day, channel, {BIN_SQL} AS bin, count(*) AS n "
    "FROM (SELECT created_at, channel, latency_s AS x FROM {table} "
    "WHERE status = 'sent' AND latency_s IS NOT NULL AND {where}) GROUP BY ALL"
)


def notification_rollups(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(daily, hist) rollups of notifications rows: per (day, channel, status), and the
    latency histogram of sent ones per (day, channel)."""
    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")
    try:
        con.register("n", frame)
        daily = con.sql(
            f"SELECT date_trunc('day', created_at) AS day, channel, status, "
            f"{', '.join(NOTE_MEASURES)} FROM n GROUP BY ALL"
        ).pl()
        hist = con.sql(_NOTE_HIST.format(table="n", where="TRUE")).pl()
    finally:
        con.close()
    return (
        daily.cast(pl.Schema(NOTE_DAILY_SCHEMA)).select(list(NOTE_DAILY_SCHEMA)),
        hist.cast(pl.Schema(NOTE_HIST_SCHEMA)).select(list(NOTE_HIST_SCHEMA)),
    )


SIDECARS = {
    "alerts": ("daily", "hist", "open", "fp", "slots", "people", "flap", "fpfile"),
    "notifications": ("daily", "hist"),
}
SCHEMAS = {
    "alerts": (
        DAILY_SCHEMA,
        HIST_SCHEMA,
        OPEN_SCHEMA,
        FP_SCHEMA,
        SLOT_SCHEMA,
        PEOPLE_SCHEMA,
        FLAP_SCHEMA,
        FP_FILE_SCHEMA,
    ),
    "notifications": (NOTE_DAILY_SCHEMA, NOTE_HIST_SCHEMA),
}
# The columns a delta's sidecars negate for the rows it replaces; None: the flap sidecar holds
# the delta's new rows alone (engine/analytics/flaps.py).
_SIGNED: dict[str, tuple[tuple[str, ...] | None, ...]] = {
    "alerts": (
        MEASURE_NAMES,
        ("n",),
        ("sign",),
        (*FP_COUNTS, "sign"),
        SLOT_COUNTS,
        PEOPLE_COUNTS,
        None,
        (*FP_COUNTS, "sign"),
    ),
    "notifications": (NOTE_NAMES, ("n",)),
}


def table_rollups(table: str, frame: pl.DataFrame, targets: Targets | None) -> Rollups:
    """The sidecars of a file of `table` (see SIDECARS)."""
    if table == "alerts":
        return rollups(frame, targets)
    return notification_rollups(frame)


def difference(
    table: str, added: pl.DataFrame, removed: pl.DataFrame, targets: Targets | None
) -> Rollups:
    """Rollups of `added` minus those of `removed` (the rows `added` replaces)."""
    plus = table_rollups(table, added, targets)
    if table == "alerts":
        plus = (*plus[:3], plus[3].with_columns(newer=pl.lit(1, pl.Int64)), *plus[4:])
        if removed.height:  # the rows it replaces are fires the partitions' sidecars count
            new = added.join(removed.select("id"), on="id", how="anti")
            plus = (*plus[:6], flap_rollup(new), *plus[7:])
    if removed.height == 0:
        return plus
    minus = table_rollups(table, removed, targets)
    return tuple(
        p if signed is None else pl.concat([p, m.with_columns([-pl.col(c) for c in signed])])
        for p, m, signed in zip(plus, minus, _SIGNED[table], strict=True)
    )


# ---------------------------------------------------------------- reading (at query time)


def _ceil_day(t: datetime) -> datetime:
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == t else day + timedelta(days=1)


def _floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def needed(filters: Filters, by: Sequence[str | None] = ()) -> set[str]:
    """The dimensions besides severity a question filters or groups on."""
    out = {d for d in ROLLUP_DIMS if getattr(filters, d)}
    return out | {d for d in by if d and d != "severity"}


def _period(filters: Filters) -> tuple[datetime, datetime, datetime, datetime] | None:
    start, end = naive(filters.start), naive(filters.end)
    d0, d1 = _ceil_day(start), _floor_day(end)
    if d0 >= d1:
        return None  # not one whole day: the exact query is small anyway
    return start, d0, d1, end


def whole_days(filters: Filters) -> tuple[datetime, datetime] | None:
    """The period's first and last whole-day boundaries (None: not one whole day)."""
    period = _period(filters)
    return None if period is None else (period[1], period[2])


def _edges(filters: Filters, select: str) -> str:
    """`select` over the alerts of the period's partial days (two ranges, so zone maps prune)."""
    dims, _ = filters.dims()
    return " UNION ALL ".join(
        select.format(where=f"created_at >= ${lo} AND created_at < ${hi} AND {dims}")
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )


def daily_rows(
    filters: Filters, by: str | None = None, targets: Targets | None = None
) -> tuple[str, dict[str, Any]] | None:
    """SQL for rollup rows (day, severity, value, measures…) covering the filters exactly.

    `value` is the alert's value of `by` (or of the one filtered dimension), else NULL.
    None when the rollup cannot answer (two dimensions besides severity, or under a day).
    """
    dims = needed(filters, [by])
    period = _period(filters)
    if len(dims) > 1 or period is None:
        return None
    dim = next(iter(dims), "")
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end, "dim": dim}
    conds = ["dim = $dim", "day >= $d0", "day < $d1"]
    for name in DIMENSIONS:
        values = getattr(filters, name)
        if values:
            column = "severity" if name == "severity" else "value"
            conds.append(f"list_contains(${name}, {column})")
            params[name] = list(values)
    value = dim if dim else "NULL::VARCHAR"
    edge = (
        f"SELECT date_trunc('day', created_at) AS day, severity, {value} AS value, "
        f"{', '.join(measures(targets))} FROM alerts WHERE {{where}} GROUP BY ALL"
    )
    sql = (
        f"SELECT day, severity, value, {', '.join(MEASURE_NAMES)} FROM alerts_daily "
        f"WHERE {' AND '.join(conds)} UNION ALL {_edges(filters, edge)}"
    )
    return sql, params


def hist_rows(filters: Filters) -> tuple[str, dict[str, Any]] | None:
    """SQL for histogram rows (day, severity, metric, bin, n) covering the filters exactly."""
    period = _period(filters)
    if needed(filters) or period is None:
        return None
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end}
    conds = ["day >= $d0", "day < $d1"]
    if filters.severity:
        conds.append("list_contains($severity, severity)")
        params["severity"] = list(filters.severity)
    dims, _ = filters.dims()
    edges = " UNION ALL ".join(
        f"SELECT date_trunc('day', created_at) AS day, severity, metric, {BIN_SQL} AS bin, "
        "count(*) AS n FROM ("
        + _HIST_SOURCE.format(
            table="alerts", where=f"created_at >= ${lo} AND created_at < ${hi} AND {dims}"
        )
        + ") GROUP BY ALL"
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )
    sql = (
        f"SELECT day, severity, metric, bin, n FROM alerts_hist WHERE {' AND '.join(conds)} "
        f"UNION ALL {edges}"
    )
    return sql, params


def _team_only(filters: Filters) -> tuple[datetime, datetime, datetime, datetime] | None:
    """The period, when no filter but the period and team applies and it holds a whole day."""
    if needed(filters) - {"team"} or filters.severity or "" in filters.team:
        return None
    return _period(filters)


def _team_rows(
    filters: Filters, sidecar: str, time: str, columns: Sequence[str], select: str
) -> tuple[str, dict[str, Any]] | None:
    period = _team_only(filters)
    if period is None:
        return None
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end}
    conds = [f"{time} >= $d0", f"{time} < $d1"]
    if filters.team:
        conds.append("list_contains($team, team)")
        params["team"] = list(filters.team)
    dims, _ = filters.dims()
    edges = " UNION ALL ".join(
        select.format(
            table="alerts", where=f"created_at >= ${lo} AND created_at < ${hi} AND {dims}"
        )
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )
    sql = (
        f"SELECT {time}, team, {', '.join(columns)} FROM {sidecar} "
        f"WHERE {' AND '.join(conds)} UNION ALL {edges}"
    )
    return sql, params


def slot_rows(filters: Filters) -> tuple[str, dict[str, Any]] | None:
    """SQL for (slot, team, alerts, acknowledged, unmuted) rows covering the filters exactly;
    None with a filter besides the period and team (the sidecars have no other dimension) or
    under a day. Rows of one (slot, team) may repeat (the delta's subtract): sum them."""
    return _team_rows(filters, "alerts_slots", "slot", SLOT_COUNTS, SLOT_SELECT)


def people_rows(filters: Filters) -> tuple[str, dict[str, Any]] | None:
    """SQL for (day, team, who, acknowledged, resolved) rows covering the filters exactly, as
    slot_rows (sum them per who)."""
    return _team_rows(filters, "alerts_people", "day", ("who", *PEOPLE_COUNTS), PEOPLE_SELECT)


def raw_hist_sql(column: str, where: str, group: str) -> str:
    """Histogram rows (`group`, bin, n) of one duration column straight from the alerts."""
    return (
        f"SELECT {group}, {BIN_SQL} AS bin, count(*) AS n "
        f"FROM (SELECT *, {column} AS x FROM alerts WHERE {where} AND {column} IS NOT NULL) "
        "GROUP BY ALL"
    )


def representative(b: int) -> float:
    return 0.0 if b == ZERO_BIN else 2 * GAMMA**b / (GAMMA + 1)


def quantiles(
    hist: pl.DataFrame, keys: Sequence[str], qs: Sequence[float] = (0.5, 0.9)
) -> pl.DataFrame:
    """Per `keys`: quantile_cont's quantiles (within ALPHA) from (keys…, bin, n) rows."""
    names = [f"q{i}" for i in range(len(qs))]
    schema: dict[str, pl.DataType] = {k: hist.schema[k] for k in keys}
    schema |= dict.fromkeys(names, pl.Float64())
    if hist.height == 0:
        return pl.DataFrame(schema=schema)
    summed = (
        hist.group_by([*keys, "bin"])
        .agg(pl.col("n").sum())
        .filter(pl.col("n") > 0)
        .sort([*keys, "bin"])
    )
    rows: list[dict[str, Any]] = []
    groups = summed.partition_by(list(keys), as_dict=True) if keys else {(): summed}
    for key, group in groups.items():
        bins = group["bin"].to_list()
        ends = group["n"].cum_sum().to_list()
        total = ends[-1]
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        for name, q in zip(names, qs, strict=True):
            pos = q * (total - 1)
            k = math.floor(pos)
            lo = representative(bins[_index(ends, k)])
            hi = representative(bins[_index(ends, min(k + 1, total - 1))])
            row[name] = lo + (pos - k) * (hi - lo)
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)


def _index(ends: list[int], rank: int) -> int:
    """The bin holding the value of 0-based `rank`, given cumulative counts."""
    lo, hi = 0, len(ends) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] > rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def notification_rows(filters: Filters) -> tuple[str, dict[str, Any]] | None:
    """SQL for notification rollup rows (day, channel, status, measures…) over the period;
    None with a dimension filter (those need the alerts) or under a day."""
    period = _period(filters)
    if filters.is_narrowed or period is None:
        return None
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end}
    edges = " UNION ALL ".join(
        f"SELECT date_trunc('day', created_at) AS day, channel, status, "
        f"{', '.join(NOTE_MEASURES)} FROM notifications "
        f"WHERE created_at >= ${lo} AND created_at < ${hi} GROUP BY ALL"
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )
    sql = (
        f"SELECT day, channel, status, {', '.join(NOTE_NAMES)} FROM notifications_daily "
        f"WHERE day >= $d0 AND day < $d1 UNION ALL {edges}"
    )
    return sql, params


def notification_hist_rows(filters: Filters) -> tuple[str, dict[str, Any]] | None:
    period = _period(filters)
    if filters.is_narrowed or period is None:
        return None
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end}
    edges = " UNION ALL ".join(
        _NOTE_HIST.format(
            table="notifications", where=f"created_at >= ${lo} AND created_at < ${hi}"
        )
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )
    sql = (
        "SELECT day, channel, bin, n FROM notifications_hist "
        f"WHERE day >= $d0 AND day < $d1 UNION ALL {edges}"
    )
    return sql, params


def _read(paths: Sequence[Path], schema: dict[str, pl.DataType]) -> str:
    """Parquet files as a relation (typed no rows when there are none)."""
    if paths:
        return f"read_parquet({parquet_list(paths)})"
    types = {pl.Datetime("us"): "TIMESTAMP", pl.String(): "VARCHAR"}
    columns = ", ".join(f"NULL::{types.get(t, 'BIGINT')} AS {n}" for n, t in schema.items())
    return f"(SELECT {columns} WHERE false)"


def fingerprint_sql(
    filters: Filters,
    limit: int,
    whole: Sequence[Path] = (),
    days: Sequence[Path] | None = None,
    table: str = "alerts",
) -> tuple[str, dict[str, Any]] | None:
    """The noisiest fingerprints, described, from the `fp` sidecars; None with a filter
    besides the period (the sidecars have no dimensions) or under a day.

    `whole`: the `fpfile` sidecars of partitions that lie within the period's whole days, read
    instead of their per-day rows (a year of 10M alerts: 0.5M rows instead of 4.9M); `days`:
    the `fp` sidecars of every other file (None: all of them, through the view); `table`: the
    alerts of the same files, for the partial days.
    """
    period = _period(filters)
    if filters.is_narrowed or filters.severity or period is None:
        return None
    start, d0, d1, end = period
    params: dict[str, Any] = {"start": start, "d0": d0, "d1": d1, "end": end}
    columns = f"fingerprint, rule, {', '.join(FP_COUNTS)}, last_created, title, sign, newer"
    edges = " UNION ALL ".join(
        f"SELECT fingerprint, rule, {', '.join(FP_ITEMS)}, 1 AS sign, 2 AS newer FROM {table} "
        f"WHERE created_at >= ${lo} AND created_at < ${hi} GROUP BY ALL"
        for lo, hi in (("start", "d0"), ("d1", "end"))
    )
    daily = "alerts_fp" if days is None else _read(days, FP_SCHEMA)
    pieces = [f"SELECT {columns} FROM {daily} WHERE day >= $d0 AND day < $d1"]
    if whole:
        pieces.append(f"SELECT {columns} FROM {_read(whole, FP_FILE_SCHEMA)}")
    sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in FP_COUNTS)
    sql = f"""
        WITH r AS NOT MATERIALIZED ({" UNION ALL ".join(pieces)} UNION ALL {edges}),
        top AS (
            SELECT fingerprint, {sums} FROM r GROUP BY fingerprint HAVING sum(alerts) > 0
            ORDER BY alerts DESC, occurrences DESC, fingerprint LIMIT {limit}
        ),
        per_rule AS (
            SELECT fingerprint, rule, sum(alerts) AS net,
                   arg_max(title, epoch_us(last_created) * 4 + newer) FILTER (sign > 0) AS title,
                   max(epoch_us(last_created) * 4 + newer) FILTER (sign > 0) AS seen
            FROM r WHERE fingerprint IN (SELECT fingerprint FROM top) GROUP BY ALL
        ),
        described AS (
            SELECT fingerprint, any_value(rule) FILTER (net > 0) AS rule,
                   count(rule) FILTER (net > 0) AS rules, arg_max(title, seen) AS title
            FROM per_rule GROUP BY fingerprint
        )
        SELECT t.fingerprint, d.rule, d.title, d.rules, t.* EXCLUDE (fingerprint)
        FROM top t JOIN described d USING (fingerprint)
        ORDER BY alerts DESC, occurrences DESC, fingerprint
    """
    return sql, params
