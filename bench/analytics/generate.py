"""The analytics benchmark's data: alerts, notifications and events, generated and seeded.

Alerts look like a year of a large shop: 200 rules over 50,000 (rule, key) series whose
frequencies follow a Zipf-like law (a few noisy series, a long tail), 20 teams, 300 services,
six sources, most alerts at low severities; 70% acknowledged (log-normal, median 4 min), 95%
resolved (median 40 min), resolved by the rules 60% of the time. One notification per five
alerts. Events: a month of canonical events for backtests (alerts from tools, log and metric
events), and the rules that run over them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from engine.analytics.tables import ALERTS, EVENTS, NOTIFICATIONS
from engine.schema import EVENT_SCHEMA

END = datetime(2026, 11, 1, tzinfo=UTC)
YEAR_US = 365 * 86400 * 1_000_000
SEVERITIES = np.array(["info", "low", "medium", "high", "critical"])
SOURCES = np.array(["prometheus", "grafana", "datadog", "newrelic", "cloudwatch", "webhook"])
N_SERIES = 50_000
N_RULES = 200


def _nullable(values: np.ndarray) -> pl.Series:
    """Strings with "" meaning null."""
    series = pl.Series(values.astype(str))
    return series.set(series == "", None)  # type: ignore[arg-type]


def _times(us: np.ndarray) -> pl.Series:
    return pl.Series(us.astype(np.int64)).cast(pl.Datetime("us"))


def alerts(n: int, first_id: int = 1, seed: int = 1, total: int | None = None) -> pl.DataFrame:
    """`n` alerts, ids from `first_id`, in the snapshot's schema. With `total` (the size of the
    whole history), ids follow creation time over the year before END as in a real store: this
    chunk covers its share of the year. Without it, the chunk spans the whole year."""
    rng = np.random.default_rng(seed + first_id)
    end_us = int(END.timestamp() * 1_000_000)
    lo, hi = end_us - YEAR_US, end_us
    if total:
        lo, hi = (
            end_us - YEAR_US + YEAR_US * (first_id - 1) // total,
            end_us - YEAR_US + YEAR_US * (first_id - 1 + n) // total,
        )
    created = np.sort(rng.integers(lo, hi, n))
    weights = 1.0 / np.arange(1, N_SERIES + 1) ** 0.8
    series = rng.choice(N_SERIES, n, p=weights / weights.sum())
    rule = series % N_RULES
    acked = rng.random(n) < 0.7
    resolved = rng.random(n) < 0.95
    # At most one open alert per (rule, key), as in the store: only a series' latest can be open.
    latest = np.zeros(n, dtype=bool)
    latest[n - 1 - np.unique(series[::-1], return_index=True)[1]] = True
    resolved |= ~latest
    tta = rng.lognormal(np.log(240), 1.0, n) * 1e6
    ttr = tta + rng.lognormal(np.log(2400), 1.1, n) * 1e6
    by_rules = rng.random(n) < 0.6
    resolution = np.where(
        by_rules, "auto", np.where(rng.random(n) < 0.75, "fixed", "false_positive")
    )
    frame = pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "rule": pl.Series(rule)
            .cast(pl.String)
            .str.pad_start(3, "0")
            .str.replace(r"^", "rule_"),
            "key": pl.Series(series)
            .cast(pl.String)
            .str.replace(r"^(.*)$", '{"fingerprint":"fp$1"}'),
            "fingerprint": pl.Series(series).cast(pl.String).str.replace(r"^", "fp"),
            "title": pl.Series(rule).cast(pl.String).str.replace(r"^", "Something is wrong #"),
            "severity": SEVERITIES[rng.choice(5, n, p=[0.3, 0.25, 0.25, 0.15, 0.05])],
            "status": np.where(resolved, "resolved", np.where(acked, "acknowledged", "active")),
            "is_open": ~resolved,
            "is_muted": rng.random(n) < 0.03,
            "source": SOURCES[series % 6],
            "service": pl.Series(series % 300).cast(pl.String).str.replace(r"^", "svc-"),
            "environment": "prod",
            "host": pl.Series(series % 2000).cast(pl.String).str.replace(r"^", "host-"),
            "team": pl.Series(series % 20).cast(pl.String).str.replace(r"^", "team-"),
            "occurrences": rng.geometric(0.4, n).astype(np.int64),
            "incident_id": None,
            "escalation_level": 0,
            "acknowledged_by": _nullable(np.where(acked, "oncall@example.com", "")),
            "resolved_by": _nullable(
                np.where(resolved, np.where(by_rules, "klaxon", "oncall@example.com"), "")
            ),
            "resolution": _nullable(np.where(resolved, resolution, "")),
            "assignee": None,
            "first_seen": _times(created),
            "last_seen": _times(created),
            "source_started_at": _times(created - rng.integers(0, 120_000_000, n)),
            "created_at": _times(created),
            "acknowledged_at": _times(created + tta.astype(np.int64)),
            "resolved_at": _times(created + ttr.astype(np.int64)),
            "updated_at": _times(created + ttr.astype(np.int64)),
        }
    ).with_columns(
        acknowledged_at=pl.when(pl.Series(acked)).then(pl.col("acknowledged_at")),
        resolved_at=pl.when(pl.Series(resolved)).then(pl.col("resolved_at")),
    )
    frame = frame.with_columns(
        [pl.col(c).cast(t) for c, t in zip(frame.columns, _alert_types(frame), strict=True)]
    )
    return ALERTS.derive(frame).select(ALERTS.empty().columns)


def _alert_types(frame: pl.DataFrame) -> list[pl.DataType]:
    empty = ALERTS.empty()
    return [empty.schema[c] for c in frame.columns]


def notifications(alert_frame: pl.DataFrame, first_id: int = 1, seed: int = 2) -> pl.DataFrame:
    """One notification per five alerts: mostly sent within seconds, some failed or dead."""
    rng = np.random.default_rng(seed + first_id)
    picked = alert_frame.filter(pl.col("id") % 5 == 0).select("id", "created_at", "team")
    n = picked.height
    status = np.array(["sent", "dead", "suppressed"])[rng.choice(3, n, p=[0.93, 0.03, 0.04])]
    latency = (rng.lognormal(np.log(1.5), 0.8, n) * 1e6).astype(np.int64)
    frame = pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "alert_id": picked["id"],
            "transition": "fired",
            "target": np.array(["slack_ops", "oncall:primary", "ops_email"])[rng.integers(0, 3, n)],
            "person": _nullable(np.where(rng.random(n) < 0.3, "oncall@example.com", "")),
            "channel": np.array(["slack_ops", "ops_email", "pager"])[rng.integers(0, 3, n)],
            "status": status,
            "attempts": rng.integers(1, 4, n),
            "created_at": picked["created_at"],
            "sent_at": picked["created_at"] + pl.Series(latency).cast(pl.Duration("us")),
            "team": picked["team"],
        }
    ).with_columns(sent_at=pl.when(pl.col("status") == "sent").then(pl.col("sent_at")))
    empty = NOTIFICATIONS.empty()
    frame = frame.with_columns([pl.col(c).cast(empty.schema[c]) for c in frame.columns])
    return NOTIFICATIONS.derive(frame).select(empty.columns)


# ---------------------------------------------------------------- events for backtests

EVENT_TITLES = np.array(
    [
        "http_request",
        "latency_sample",
        "heartbeat",
        "auth.failed",
        "error",
        "disk_usage",
        "HighErrorRate",
        "DiskFull",
        "CPUHigh",
        "PodCrashLooping",
    ]
)
EVENT_SHARES = np.array([0.35, 0.15, 0.1, 0.08, 0.08, 0.06, 0.06, 0.05, 0.04, 0.03])
ALERT_TITLES = {"HighErrorRate", "DiskFull", "CPUHigh", "PodCrashLooping"}


def events(n: int, start: datetime, days: int = 30, seed: int = 3) -> pl.DataFrame:
    """`n` canonical events spread over `days` from `start`, in arrival (= time) order."""
    rng = np.random.default_rng(seed)
    start_us = int(start.timestamp() * 1_000_000)
    ts = np.sort(rng.integers(start_us, start_us + days * 86400 * 1_000_000, n))
    title_idx = rng.choice(len(EVENT_TITLES), n, p=EVENT_SHARES)
    titles = EVENT_TITLES[title_idx]
    is_alert = np.isin(titles, list(ALERT_TITLES))
    host = rng.choice(500, n, p=(w := 1.0 / np.arange(1, 501) ** 0.7) / w.sum())
    # Every host sends heartbeats at the same pace; other traffic favours busy hosts.
    host = np.where(titles == "heartbeat", rng.integers(0, 500, n), host)
    status = np.where(is_alert & (rng.random(n) < 0.03), "resolved", "firing")
    frame = pl.DataFrame(
        {
            "event_id": pl.Series(np.arange(n)).cast(pl.String).str.replace(r"^", "ev-"),
            "ts": _times(ts).dt.replace_time_zone("UTC"),
            "received_at": _times(ts).dt.replace_time_zone("UTC"),
            "kind": np.where(is_alert, "alert", "event"),
            "source": np.where(is_alert, "prometheus", "app"),
            "source_id": "",
            "fingerprint": pl.Series(titles) + "-" + pl.Series(host).cast(pl.String),
            "title": titles,
            "description": "",
            "severity": SEVERITIES[rng.choice(5, n, p=[0.3, 0.25, 0.25, 0.15, 0.05])],
            "status": status,
            "service": pl.Series(host % 50).cast(pl.String).str.replace(r"^", "svc-"),
            "environment": np.where(rng.random(n) < 0.8, "prod", "staging"),
            "host": pl.Series(host).cast(pl.String).str.replace(r"^", "host-"),
            "value": np.round(rng.lognormal(np.log(120), 0.7, n), 2),
            "labels": [{}] * n,
            "raw": None,
        }
    )
    frame = frame.with_columns(
        labels=pl.concat_list(
            pl.struct(
                key=pl.lit("code"),
                value=pl.Series(
                    np.array(["200", "404", "500", "503"])[
                        rng.choice(4, n, p=[0.85, 0.08, 0.05, 0.02])
                    ]
                ),
            ),
            pl.struct(
                key=pl.lit("region"), value=pl.Series(np.array(["eu", "us", "ap"])[host % 3])
            ),
        )
    )
    return frame.with_columns(pl.col("labels").cast(EVENT_SCHEMA["labels"])).cast(
        dict(EVENT_SCHEMA)
    )  # type: ignore[arg-type]


def event_snapshot_rows(frame: pl.DataFrame, first_id: int = 1) -> pl.DataFrame:
    """Canonical events → the events snapshot's schema (naive UTC times, ids)."""
    empty = EVENTS.empty()
    return frame.with_columns(
        id=pl.int_range(first_id, first_id + frame.height, dtype=pl.Int64),
        ts=pl.col("ts").dt.replace_time_zone(None),
        received_at=pl.col("received_at").dt.replace_time_zone(None),
    ).select([pl.col(c).cast(empty.schema[c]) for c in empty.columns])


RULES_CURRENT = """
rule source "{{ title }}"
  when kind == "alert"
  notify slack_ops
end

rule errors_burst "Errors on {{ host }}"
  when title == "error"
  count() > 20 within 10m
  by host
  severity high
  notify oncall:primary
end

rule auth_failures "Logins failing on {{ host }}"
  when title == "auth.failed"
  count() >= 30 within 5m
  by host
  severity medium
  notify slack_ops
end

rule server_errors "5xx on {{ service }}"
  when title == "http_request" and code in ["500", "503"]
  count() > 40 within 5m
  by service
  severity high
  notify slack_ops, oncall:primary
end

rule slow "Slow {{ service }}"
  when title == "latency_sample"
  p90(value) > 400 within 10m
  by service
  severity medium
  notify slack_ops
end

rule quiet_host "No heartbeat from {{ host }}"
  when title == "heartbeat"
  absent for 12h
  by host
  severity low
  notify ops_email
end
"""

RULES_PROPOSED = (
    RULES_CURRENT.replace("count() > 20 within 10m", "count() > 10 within 10m").replace(
        "p90(value) > 400 within 10m", "p90(value) > 300 within 10m"
    )
    + """
rule disk "Disk filling on {{ host }}"
  when title == "disk_usage" and value > 250
  by host
  for 10m
  resolve after 30m
  severity high
  notify oncall:primary
end
"""
)


def start_of_month() -> datetime:
    return END - timedelta(days=30)
