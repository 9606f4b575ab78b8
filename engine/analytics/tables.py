"""The tables analytics snapshots: which columns, how each dialect reads them, what is derived.

Times are kept as naive UTC `Datetime("us")` (DuckDB's plain TIMESTAMP): arithmetic and day
buckets on TIMESTAMPTZ go through ICU and are several times slower on 10M rows. Durations that
every dashboard needs (time to acknowledge, resolve, detect) are computed once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from engine.schema import LABELS

TS = pl.Datetime("us")

# How a column is read: the raw form both dialects deliver, then the cast.
RAW = {
    "int": pl.Int64,
    "float": pl.Float64,
    "str": pl.String,
    "bool": pl.Int64,
    "time": pl.String,
    "labels": pl.String,
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int | float | str | bool | time | labels
    sqlite: str | None = None  # SQL expression when it is not the column itself
    postgresql: str | None = None

    def sql(self, dialect: str) -> str:
        custom = self.sqlite if dialect == "sqlite" else self.postgresql
        if custom is not None:
            return f"{custom} AS {self.name}"
        if dialect == "postgresql":
            if self.kind == "time":
                # Always six fraction digits, in UTC, whatever the session's time zone.
                utc = f"{self.name} AT TIME ZONE 'UTC'"
                return f"to_char({utc}, 'YYYY-MM-DD HH24:MI:SS.US') AS {self.name}"
            if self.kind == "bool":
                return f"{self.name}::int AS {self.name}"
            if self.kind == "labels":
                return f"{self.name}::text AS {self.name}"
        return self.name


def _seconds(later: str, earlier: str) -> pl.Expr:
    """later − earlier in seconds, never negative (clock skew between sources counts as 0)."""
    return ((pl.col(later) - pl.col(earlier)).dt.total_microseconds() / 1e6).clip(lower_bound=0.0)


def _derive_alerts(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        # One number per (rule, key): grouping by it is much faster than by two strings.
        series=pl.concat_str(["rule", "key"], separator="\x1f").hash(seed=7),
        tta_s=_seconds("acknowledged_at", "created_at"),
        ttr_s=_seconds("resolved_at", "created_at"),
        ttd_s=_seconds("created_at", "source_started_at"),
    )


def _derive_notifications(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(latency_s=_seconds("sent_at", "created_at"))


def _derive_events(df: pl.DataFrame) -> pl.DataFrame:
    return df


@dataclass(frozen=True)
class TableSpec:
    """A snapshotted table. `mode` says how changes are found:

    - "updated": rows whose `updated_at` moved since the last refresh (alerts change in place);
    - "append": rows past the highest id seen (events never change);
    - "settle": new rows plus rows not yet in a final status (notifications have no updated_at).
    """

    name: str
    columns: tuple[Column, ...]
    mode: str
    derive: Callable[[pl.DataFrame], pl.DataFrame]
    final_statuses: tuple[str, ...] = ()
    open_statuses: tuple[str, ...] = ()
    extra: dict[str, pl.DataType] = field(default_factory=dict)

    def select_list(self, dialect: str) -> str:
        return ", ".join(c.sql(dialect) for c in self.columns)

    @property
    def raw_schema(self) -> pl.Schema:
        return pl.Schema({c.name: RAW[c.kind] for c in self.columns})

    def convert(self, raw: pl.DataFrame) -> pl.DataFrame:
        """Raw rows as both dialects deliver them → the snapshot's typed frame."""
        exprs = []
        for c in self.columns:
            col = pl.col(c.name)
            if c.kind == "time":
                exprs.append(
                    col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
                )
            elif c.kind == "bool":
                exprs.append(col.cast(pl.Boolean))
            elif c.kind == "labels":
                exprs.append(col)  # decoded below
            else:
                exprs.append(col.cast(RAW[c.kind]))
        df = raw.select(exprs)
        for c in self.columns:
            if c.kind == "labels":
                df = df.with_columns(pl.Series(c.name, _labels(df[c.name].to_list()), dtype=LABELS))
        return self.derive(df)

    def empty(self) -> pl.DataFrame:
        return self.convert(pl.DataFrame(schema=self.raw_schema))


def _labels(texts: list[str | None]) -> list[dict[str, str]]:
    import orjson

    out = []
    for text in texts:
        value = orjson.loads(text) if text else {}
        out.append(
            {str(k): "" if v is None else str(v) for k, v in value.items()}
            if isinstance(value, dict)
            else {}
        )
    return out


_MUTED_SQLITE = "coalesce(json_array_length(muted_by) > 0, 0)"
_MUTED_PG = (
    "CASE WHEN jsonb_typeof(muted_by) = 'array' AND jsonb_array_length(muted_by) > 0 "
    "THEN 1 ELSE 0 END"
)

ALERTS = TableSpec(
    name="alerts",
    mode="updated",
    derive=_derive_alerts,
    columns=(
        Column("id", "int"),
        Column("rule", "str"),
        Column("key", "str"),
        Column("fingerprint", "str"),
        Column("title", "str"),
        Column("severity", "str"),
        Column("status", "str"),
        Column("is_open", "bool"),
        Column("is_muted", "bool", sqlite=_MUTED_SQLITE, postgresql=_MUTED_PG),
        Column("source", "str"),
        Column("service", "str"),
        Column("environment", "str"),
        Column("host", "str"),
        Column("team", "str"),
        Column("occurrences", "int"),
        Column("incident_id", "int"),
        Column("escalation_level", "int"),
        Column("acknowledged_by", "str"),
        Column("resolved_by", "str"),
        Column("resolution", "str"),
        Column("assignee", "str"),
        Column("first_seen", "time"),
        Column("last_seen", "time"),
        Column("source_started_at", "time"),
        Column("created_at", "time"),
        Column("acknowledged_at", "time"),
        Column("resolved_at", "time"),
        Column("updated_at", "time"),
    ),
)

_ALERT_TEAM = "(SELECT a.team FROM alerts a WHERE a.id = notifications.alert_id)"

NOTIFICATIONS = TableSpec(
    name="notifications",
    mode="settle",
    derive=_derive_notifications,
    final_statuses=("sent", "dead", "suppressed"),
    open_statuses=("pending", "held", "failed"),
    columns=(
        Column("id", "int"),
        Column("alert_id", "int"),
        Column("transition", "str"),
        Column("target", "str"),
        # the person a user or on-call target reached (the notifier records it in the payload)
        Column(
            "person", "str", sqlite="json_extract(payload, '$.user')", postgresql="payload->>'user'"
        ),
        Column("channel", "str"),
        Column("status", "str"),
        Column("attempts", "int"),
        # The team of its alert as the notification is read. Klaxon never moves an alert to
        # another team, so pages per team need no join with 10M alerts (0.45 s a year).
        Column("team", "str", sqlite=_ALERT_TEAM, postgresql=_ALERT_TEAM),
        Column("created_at", "time"),
        Column("sent_at", "time"),
    ),
)

EVENTS = TableSpec(
    name="events",
    mode="append",
    derive=_derive_events,
    columns=(
        Column("id", "int"),
        Column("event_id", "str"),
        Column("ts", "time"),
        Column("received_at", "time"),
        Column("kind", "str"),
        Column("source", "str"),
        Column("source_id", "str"),
        Column("fingerprint", "str"),
        Column("title", "str"),
        Column("description", "str"),
        Column("severity", "str"),
        Column("status", "str"),
        Column("service", "str"),
        Column("environment", "str"),
        Column("host", "str"),
        Column("value", "float"),
        Column("labels", "labels"),
    ),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (ALERTS, NOTIFICATIONS, EVENTS)}
