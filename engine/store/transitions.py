"""Applying the engine's transitions to the `alerts` table, a batch at a time.

Within one batch an alert may fire, repeat, resolve and fire again. Rows are numbered by
generation per (rule, key): generation 0 belongs to the alert already open in the store,
each `fired` starts the next. Each generation is applied with a handful of bulk statements,
so a batch costs a few round trips however many alerts it touches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Connection, Text, any_, bindparam, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from engine.store.models import Alert, AlertHistory, Incident

ENGINE_ACTOR = "klaxon"


@dataclass
class Applied:
    """What a batch did to the alerts table, for notifications and the live stream."""

    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    # In order: {"alert_id", "transition" (fired/resolved; a reopen is fired), "at", "rule", "key"}.
    # The alert rows hold the rest (notify, escalate, team, severity, muted_by).
    transitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        return sorted(
            set(self.fired) | set(self.resolved) | set(self.repeated) | set(self.reopened)
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _open_alerts(
    conn: Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(rule, key) → (id, status) of the open alert, for the given keys.

    Asked per rule as `is_open AND rule = ? AND key IN (...)`, written so both stores search
    the partial unique index on open alerts: SQLite uses a partial index only when the query
    repeats its WHERE (`is_open`, not `is_open = 1`), and scanned every alert ever stored
    for a row-value IN (8 ms a batch at 11,000 alerts, growing).
    """
    by_rule: dict[str, list[str]] = {}
    for rule, key in keys:
        by_rule.setdefault(rule, []).append(key)
    found: dict[tuple[str, str], tuple[int, str]] = {}
    pg = conn.dialect.name == "postgresql"
    size = 10_000 if pg else 500
    for rule, rule_keys in by_rule.items():
        for i in range(0, len(rule_keys), size):
            chunk = rule_keys[i : i + size]
            # PostgreSQL: one array parameter (psycopg parses a placeholder per key slowly).
            among = Alert.key == any_(literal(chunk, ARRAY(Text))) if pg else Alert.key.in_(chunk)
            rows = conn.execute(
                select(Alert.id, Alert.key, Alert.status).where(_IS_OPEN, Alert.rule == rule, among)
            )
            for alert_id, key, status in rows:
                found[(rule, key)] = (alert_id, status)
    return found


_IS_OPEN = text("alerts.is_open")  # the partial index's own predicate (see _open_alerts)


def _incidents(conn: Connection, fired: pl.DataFrame) -> dict[tuple[str, str, datetime], int]:
    """Find or create the incidents fired alerts join; return their ids."""
    rows = fired.filter(pl.col("incident_by").is_not_null())
    if rows.height == 0:
        return {}
    wanted = rows.group_by("incident_by", "incident_key", "incident_opened").agg(
        pl.col("title").first(), pl.len().alias("n"), pl.col("severity").cast(pl.String).max()
    )
    ids: dict[tuple[str, str, datetime], int] = {}
    for r in wanted.iter_rows(named=True):
        ident = (r["incident_by"], r["incident_key"], r["incident_opened"])
        existing = conn.execute(
            select(Incident.id).where(
                Incident.correlate == ident[0],
                Incident.key == ident[1],
                Incident.opened_at == ident[2],
            )
        ).scalar_one_or_none()
        if existing is None:
            existing = conn.execute(
                insert(Incident)
                .values(
                    correlate=ident[0],
                    key=ident[1],
                    title=_incident_title(ident[0], ident[1]),
                    opened_at=ident[2],
                    status="open",
                    severity=r["severity"] or "info",
                    alert_count=0,
                )
                .returning(Incident.id)
            ).scalar_one()
        ids[ident] = existing
    return ids


def _incident_title(by: str, key: str) -> str:
    values = orjson.loads(key)
    return f"{by}: " + ", ".join(f"{k}={v}" for k, v in values.items())


def _alert_values(row: dict[str, Any], incident_id: int | None, now: datetime) -> dict[str, Any]:
    muted = list(row["muted_by"] or [])
    return {
        "rule": row["rule"],
        "key": row["key"],
        "fingerprint": row["fingerprint"] or "",
        "title": row["title"] or row["rule"],
        "description": row["description"] or "",
        "severity": row["severity"],
        "status": "suppressed" if muted else "active",
        "is_open": True,
        "source": row["source"] or "",
        "service": row["service"] or "",
        "environment": row["environment"] or "",
        "host": row["host"] or "",
        "team": row["team"],
        "labels": dict(row["labels"] or {}),
        "event_labels": dict(row["event_labels"] or {}),
        "value": row["value"],
        "occurrences": int(row["occurrences"] or 1),
        "first_seen": row["first_seen"] or row["at"],
        "last_seen": row["at"],
        "source_started_at": row["event_ts"] or row["first_seen"] or row["at"],
        "created_at": row["at"],
        "notify": list(row["notify"] or []),
        "escalate": [dict(e) for e in (row["escalate"] or [])],
        "muted_by": muted,
        "incident_id": incident_id,
        "last_event_id": row["event_id"],
        "escalation_level": 0,
        "updated_at": now,
    }


def apply_transitions(conn: Connection, transitions: pl.DataFrame) -> Applied:
    """Apply TRANSITION_SCHEMA rows (sorted as the engine emits them) to the store."""
    applied = Applied()
    if transitions.height == 0:
        return applied
    now = _now()
    frame = transitions.with_columns(
        gen=(pl.col("transition") == "fired").cast(pl.Int32).cum_sum().over("rule", "key")
    )
    keys = frame.select("rule", "key").unique().rows()
    open_now = _open_alerts(conn, [tuple(k) for k in keys])
    incident_ids = _incidents(conn, frame.filter(pl.col("transition") == "fired"))
    history: list[dict[str, Any]] = []
    current: dict[tuple[str, str], int] = {k: v[0] for k, v in open_now.items()}
    statuses: dict[tuple[str, str], str] = {k: v[1] for k, v in open_now.items()}

    for gen in range(int(frame["gen"].max() or 0) + 1):  # type: ignore[arg-type]
        rows = frame.filter(pl.col("gen") == gen)
        fired = rows.filter(pl.col("transition") == "fired")
        if fired.height:
            values = []
            for r in fired.iter_rows(named=True):
                ident = (r["incident_by"], r["incident_key"], r["incident_opened"])
                values.append(_alert_values(r, incident_ids.get(ident), now))
            # An alert the store still holds open (the engine restarted its state, or a person
            # reopened it) is closed as replaced before its successor opens.
            stale = [
                current[(v["rule"], v["key"])] for v in values if (v["rule"], v["key"]) in current
            ]
            if stale:
                conn.execute(
                    update(Alert)
                    .where(Alert.id.in_(stale))
                    .values(
                        is_open=False,
                        status="resolved",
                        resolved_at=now,
                        resolved_by=ENGINE_ACTOR,
                        resolution="replaced",
                    )
                )
            ids = _insert_alerts(conn, values)
            for v, alert_id in zip(values, ids, strict=True):
                current[(v["rule"], v["key"])] = alert_id
                statuses[(v["rule"], v["key"])] = v["status"]
                applied.fired.append(alert_id)
                applied.transitions.append(
                    {
                        "alert_id": alert_id,
                        "transition": "fired",
                        "at": v["created_at"],
                        "rule": v["rule"],
                        "key": v["key"],
                    }
                )
                history.append(
                    {
                        "alert_id": alert_id,
                        "at": v["created_at"],
                        "action": "suppressed" if v["muted_by"] else "fired",
                        "actor": ENGINE_ACTOR,
                        "from_status": None,
                        "to_status": v["status"],
                        "note": ("muted by " + ", ".join(v["muted_by"])) if v["muted_by"] else None,
                        "details": {
                            "rule": v["rule"],
                            "key": orjson.loads(v["key"]),
                            "muted_by": v["muted_by"],
                        },
                    }
                )
            for ident, incident_id in incident_ids.items():
                n = sum(1 for v in values if v["incident_id"] == incident_id)
                if n:
                    conn.execute(
                        update(Incident)
                        .where(Incident.id == incident_id)
                        .values(
                            alert_count=Incident.alert_count + n, status="open", resolved_at=None
                        )
                    )
                del ident
        repeats = (
            rows.filter(pl.col("transition") == "repeated")
            .group_by("rule", "key", maintain_order=True)
            .agg(
                pl.col("occurrences").sum(),
                pl.col("at").max(),
                pl.col("value").last(),
                pl.col("title").last(),
                pl.col("event_id").last(),
            )
        )
        if repeats.height:
            params = []
            reopen_rows: list[dict[str, Any]] = []
            for r in repeats.iter_rows(named=True):
                repeat_id = current.get((r["rule"], r["key"]))
                if repeat_id is None:
                    # A person resolved it while the source still reports it: open it again.
                    reopen_rows.append(r)
                    continue
                params.append(
                    {
                        "b_id": repeat_id,
                        "b_n": int(r["occurrences"]),
                        "b_at": r["at"],
                        "b_value": r["value"],
                        "b_title": r["title"],
                        "b_event": r["event_id"],
                    }
                )
                applied.repeated.append(repeat_id)
            if params:
                conn.execute(
                    update(Alert)
                    .where(Alert.id == bindparam("b_id"))
                    .values(
                        occurrences=Alert.occurrences + bindparam("b_n"),
                        last_seen=bindparam("b_at"),
                        value=bindparam("b_value"),
                        title=bindparam("b_title"),
                        last_event_id=bindparam("b_event"),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False),
                    params,
                )
            if reopen_rows:
                _reopen(conn, frame, reopen_rows, current, statuses, applied, history, now)
        resolved = rows.filter(pl.col("transition") == "resolved")
        if resolved.height:
            params = []
            for r in resolved.iter_rows(named=True):
                resolved_id = current.pop((r["rule"], r["key"]), None)
                if resolved_id is None:
                    continue  # already resolved by a person
                before = statuses.pop((r["rule"], r["key"]), "active")
                params.append(
                    {
                        "b_id": resolved_id,
                        "b_at": r["at"],
                        "b_value": r["value"],
                        "b_resolution": _resolution(r),
                    }
                )
                applied.resolved.append(resolved_id)
                applied.transitions.append(
                    {
                        "alert_id": resolved_id,
                        "transition": "resolved",
                        "at": r["at"],
                        "rule": r["rule"],
                        "key": r["key"],
                    }
                )
                history.append(
                    {
                        "alert_id": resolved_id,
                        "at": r["at"],
                        "action": "resolved",
                        "actor": ENGINE_ACTOR,
                        "from_status": before,
                        "to_status": "resolved",
                        "note": _resolution(r),
                        "details": {"muted_by": list(r["muted_by"] or [])},
                    }
                )
            if params:
                conn.execute(
                    update(Alert)
                    .where(Alert.id == bindparam("b_id"))
                    .values(
                        status="resolved",
                        is_open=False,
                        resolved_at=bindparam("b_at"),
                        resolved_by=ENGINE_ACTOR,
                        resolution=bindparam("b_resolution"),
                        value=bindparam("b_value"),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False),
                    params,
                )
    if history:
        _insert_history(conn, history)
    _close_incidents(conn, applied.resolved)
    return applied


def _resolution(row: dict[str, Any]) -> str:
    """Resolved by the rules, not a person: the source said so, a window cleared, a timer ran."""
    return "auto"


def _reopen(
    conn: Connection,
    frame: pl.DataFrame,
    rows: list[dict[str, Any]],
    current: dict[tuple[str, str], int],
    statuses: dict[tuple[str, str], str],
    applied: Applied,
    history: list[dict[str, Any]],
    now: datetime,
) -> None:
    for r in rows:
        last = (
            frame.filter((pl.col("rule") == r["rule"]) & (pl.col("key") == r["key"]))
            .filter(pl.col("transition") == "repeated")
            .row(-1, named=True)
        )
        values = _alert_values(
            {**last, "occurrences": r["occurrences"], "first_seen": r["at"]}, None, now
        )
        alert_id = conn.execute(insert(Alert).values(**values).returning(Alert.id)).scalar_one()
        current[(r["rule"], r["key"])] = alert_id
        statuses[(r["rule"], r["key"])] = values["status"]
        applied.reopened.append(alert_id)
        applied.transitions.append(
            {
                "alert_id": alert_id,
                "transition": "fired",
                "at": r["at"],
                "rule": r["rule"],
                "key": r["key"],
            }
        )
        history.append(
            {
                "alert_id": alert_id,
                "at": r["at"],
                "action": "reopened",
                "actor": ENGINE_ACTOR,
                "from_status": None,
                "to_status": values["status"],
                "note": "still reported after it was resolved by hand",
                "details": {},
            }
        )


def _close_incidents(conn: Connection, resolved_ids: list[int]) -> None:
    """An incident resolves when its last open alert does."""
    if not resolved_ids:
        return
    incident_ids = (
        conn.execute(
            select(Alert.incident_id)
            .where(Alert.id.in_(resolved_ids), Alert.incident_id.is_not(None))
            .distinct()
        )
        .scalars()
        .all()
    )
    for incident_id in incident_ids:
        still_open = conn.execute(
            select(Alert.id).where(Alert.incident_id == incident_id, Alert.is_open).limit(1)
        ).first()
        if still_open is None:
            conn.execute(
                update(Incident)
                .where(Incident.id == incident_id)
                .values(status="resolved", resolved_at=_now())
            )


def _insert_alerts(conn: Connection, values: list[dict[str, Any]]) -> list[int]:
    """Insert alert rows, returning their ids in order.

    On PostgreSQL the ids are drawn from the sequence first and the rows go in with COPY:
    INSERT ... RETURNING for many rows made psycopg parse a placeholder per value, and an
    executemany still cost 0.16 ms a row (0.8 s of a batch opening 5,000 alerts).
    """
    if conn.dialect.name != "postgresql":
        return list(
            conn.execute(insert(Alert).returning(Alert.id, sort_by_parameter_order=True), values)
            .scalars()
            .all()
        )
    ids = [
        int(i)
        for i in conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('alerts', 'id')) FROM generate_series(1, :n)"
            ),
            {"n": len(values)},
        ).scalars()
    ]
    names = list(values[0])
    rows = ([i, *(v[c] for c in names)] for v, i in zip(values, ids, strict=True))
    copy_rows(conn, "alerts", ["id", *names], rows)
    return ids


def _insert_history(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(insert(AlertHistory), rows)
        return
    names = list(rows[0])
    copy_rows(conn, "alert_history", names, ([r[c] for c in names] for r in rows))


def copy_rows(conn: Connection, table: str, columns: list[str], rows: Iterable[list[Any]]) -> None:
    """PostgreSQL: COPY rows into `table` in the caller's transaction. Every row lists values
    for `columns` in order; dicts and lists go in as JSON, datetimes as UTC.

    The rows are written here in COPY's text format: psycopg's `write_row` adapts each value
    on its own and cost more than the executemany it replaced."""
    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        lines: list[str] = []
        for row in rows:
            lines.append("\t".join([_cell(v) for v in row]))
            if len(lines) >= 1000:
                copy.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")


_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _cell(value: Any) -> str:
    """One value in COPY's text format: \\N for NULL, backslash escapes for the rest."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        text_ = value
    elif isinstance(value, bool):
        return "t" if value else "f"
    elif isinstance(value, int | float):
        return repr(value)
    elif isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()
    elif isinstance(value, dict | list):
        text_ = orjson.dumps(value).decode()
    else:
        text_ = str(value)
    if _SPECIAL.search(text_):
        return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], text_)
    return text_
