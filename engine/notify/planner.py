"""Notification rows from targets: which channels, which template, when (groups, quiet hours).

Every path that makes notifications (a batch's transitions, an escalation, a repeat, a
fallback) builds its rows here, so they all follow the same rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert

from engine.config import Settings
from engine.notify.grouping import GroupClock, group_key, scope_of, timings_for
from engine.notify.quiet import quiet_until
from engine.notify.targets import Delivery, Directory
from engine.notify.templates import render_one
from engine.store.models import Alert, Notification

GROUPED = ("fired", "resolved", "repeated")  # escalations and fallbacks go at once
FIRING = ("fired", "escalated", "repeated")


# The alert columns a message shows (its snapshot), and those planning reads besides: batches plan
# over these rows rather than loading each alert as an ORM object.
SNAPSHOT_COLUMNS = (
    Alert.id,
    Alert.rule,
    Alert.title,
    Alert.description,
    Alert.severity,
    Alert.status,
    Alert.service,
    Alert.environment,
    Alert.host,
    Alert.team,
    Alert.labels,
    Alert.value,
    Alert.occurrences,
    Alert.created_at,
)
PLANNING_COLUMNS = (*SNAPSHOT_COLUMNS, Alert.notify, Alert.escalate, Alert.muted_by)


def alert_snapshot(a: Alert | Row[Any]) -> dict[str, Any]:
    """The alert's fields as messages show them, kept with each row for later rendering.

    `a` is an Alert or a row with at least SNAPSHOT_COLUMNS."""
    return {
        "id": a.id,
        "rule": a.rule,
        "title": a.title,
        "description": a.description,
        "severity": a.severity,
        "status": a.status,
        "service": a.service,
        "environment": a.environment,
        "host": a.host,
        "team": a.team,
        "labels": dict(a.labels or {}),
        "value": a.value,
        "occurrences": a.occurrences,
        "created_at": a.created_at.isoformat() if a.created_at else None,
    }


class Planner:
    """Builds rows for one transaction; `insert` writes them and the group timers."""

    def __init__(self, conn: Connection, settings: Settings, now: datetime) -> None:
        self.conn = conn
        self.settings = settings
        self.now = now
        self.directory = Directory(conn)
        self.groups = GroupClock(conn, now)

    def for_targets(
        self,
        alert: dict[str, Any],
        transition: str,
        targets: list[str],
        *,
        level: int | None = None,
        grouped: bool = True,
    ) -> list[dict[str, Any]]:
        deliveries = self.directory.expand(targets, alert.get("team"), self.now)
        return [self.row(alert, transition, d, level=level, grouped=grouped) for d in deliveries]

    def row(
        self,
        alert: dict[str, Any],
        transition: str,
        d: Delivery,
        *,
        level: int | None = None,
        of: int | None = None,
        grouped: bool = True,
        due: datetime | None = None,
        fallback_of: int | None = None,
    ) -> dict[str, Any]:
        severity = str(alert.get("severity") or "medium")
        scope = scope_of(alert)
        payload: dict[str, Any] = {
            "alert": alert,
            "severity": severity,
            "team": alert.get("team"),
            "scope": scope,
            "quiet": d.quiet,
            "tz": d.tz,
            "user": d.user,
        }
        if level is not None:
            payload["level"] = level
        if of is not None:
            payload["of"] = of
        values: dict[str, Any] = {
            "alert_id": alert.get("id"),
            "transition": transition,
            "target": d.target[:256],
            "channel": d.channel[:128],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
            "group_key": None,
            "subject": "",
            "body": "",
            "payload": payload,
            "fallback_of": fallback_of,
            "created_at": self.now,
            "sent_at": None,
        }
        channel = self.directory.channel(d.channel) if d.channel else None
        if d.error or channel is None:
            return values | {
                "status": "dead",
                "last_error": d.error or f"no channel named '{d.channel}'",
            }
        if not channel.is_enabled:
            return values | {
                "status": "suppressed",
                "last_error": f"channel '{channel.name}' is disabled",
            }
        values["subject"], values["body"] = render_one(channel.kind, transition, alert, level=level)
        when = due or self.now
        timings = timings_for(channel, self.settings)
        if grouped and transition in GROUPED and timings.enabled:
            values["group_key"] = group_key(scope, channel.name)
            if due is None:
                when = self.groups.flush_at(values["group_key"], scope, channel.name, timings)
        hold = None if severity == "critical" else quiet_until(d.quiet, self.now, d.tz)
        if hold is not None:
            return values | {"status": "held", "next_attempt_at": max(hold, when)}
        return values | {"next_attempt_at": when}

    def fallback(self, row: dict[str, Any], row_id: int) -> dict[str, Any] | None:
        """A critical alert's firing message that is dead goes to its team's fallback channel."""
        payload = row.get("payload") or {}
        if payload.get("severity") != "critical" or row.get("transition") not in (
            "fired",
            "escalated",
        ):
            return None
        if row.get("fallback_of") is not None:
            return None
        team = self.directory.team(payload.get("team"))
        channel = team.fallback_channel if team is not None else None
        if not channel or channel == row.get("channel"):
            return None
        delivery = Delivery(target=channel, channel=channel)
        alert = dict(payload.get("alert") or {})
        return self.row(
            alert,
            row["transition"],
            delivery,
            level=payload.get("level"),
            grouped=False,
            fallback_of=row_id,
        )

    def insert(self, rows: list[dict[str, Any]]) -> None:
        """Write rows (and fallbacks for critical ones already dead); save group timers.

        Only a fallback needs its row's id: without one, the rows go in as one executemany
        (INSERT .. RETURNING in parameter order is a statement per row on SQLite)."""
        if rows:
            dead = [r for r in rows if r["status"] == "dead" and self.fallback(r, 0) is not None]
            if not dead:
                self.conn.execute(insert(Notification), rows)
            else:
                stmt = insert(Notification).returning(Notification.id, sort_by_parameter_order=True)
                ids = list(self.conn.execute(stmt, rows).scalars())
                extra = [
                    f
                    for row, row_id in zip(rows, ids, strict=True)
                    if row["status"] == "dead" and (f := self.fallback(row, row_id)) is not None
                ]
                if extra:
                    self.conn.execute(insert(Notification), extra)
        self.groups.save()
