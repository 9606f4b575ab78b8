"""Escalation: an alert nobody acknowledged climbs its ladder, level by level.

When a level's delay has passed (wall clock, counted from the alert's first notification) and
the alert is still active, the level's targets are notified, the alert's escalation level rises
and its history says so. Acknowledging, investigating or resolving stops the climb.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from engine.config import Settings
from engine.notify.clock import Clock, wall_clock
from engine.notify.planner import Planner, alert_snapshot
from engine.store.db import Database, orm
from engine.store.models import Alert, AlertHistory, Escalation
from engine.store.transitions import ENGINE_ACTOR


def escalate_due(
    db: Database, settings: Settings, clock: Clock | None = None, limit: int = 200
) -> int:
    """Raise every alert whose next level is due; returns how many levels were notified."""
    now = (clock or wall_clock)()
    with db.connect() as conn:
        return escalate_due_in(conn, settings, now, limit)


def escalate_due_in(conn: Connection, settings: Settings, now: datetime, limit: int = 200) -> int:
    stmt = (
        select(Escalation)
        .where(Escalation.status == "active", Escalation.next_at <= now)
        .order_by(Escalation.next_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    due = list(orm(conn).scalars(stmt))
    if not due:
        return 0
    alerts = {
        a.id: a
        for a in orm(conn).scalars(select(Alert).where(Alert.id.in_([e.alert_id for e in due])))
    }
    planner = Planner(conn, settings, now)
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    raised = 0
    for esc in due:
        alert = alerts.get(esc.alert_id)
        if alert is None or not alert.is_open or alert.status != "active":
            _set(conn, esc.alert_id, status="stopped", next_at=None, updated_at=now)
            continue
        ladder = list(esc.ladder or [])
        if esc.level >= len(ladder):
            _set(conn, esc.alert_id, status="done", next_at=None, updated_at=now)
            continue
        level = esc.level + 1
        targets = [str(t) for t in ladder[esc.level].get("targets") or []]
        rows += planner.for_targets(
            alert_snapshot(alert), "escalated", targets, level=level, grouped=False
        )
        conn.execute(
            update(Alert)
            .where(Alert.id == alert.id)
            .values(
                escalation_level=max(alert.escalation_level or 0, level),
                escalated_at=now,
                updated_at=now,
            )
        )
        history.append(
            {
                "alert_id": alert.id,
                "at": now,
                "action": "escalated",
                "actor": ENGINE_ACTOR,
                "from_status": alert.status,
                "to_status": alert.status,
                "note": f"level {level}: nobody acknowledged; notified {', '.join(targets)}",
                "details": {"level": level, "targets": targets, "automatic": True},
            }
        )
        if level < len(ladder):
            next_at = esc.started_at + timedelta(seconds=float(ladder[level]["delay_s"]))
            _set(conn, esc.alert_id, level=level, next_at=max(next_at, now), updated_at=now)
        else:
            _set(conn, esc.alert_id, level=level, status="done", next_at=None, updated_at=now)
        raised += 1
    planner.insert(rows)
    if history:
        conn.execute(insert(AlertHistory), history)
    return raised


def _set(conn: Connection, alert_id: int, **values: Any) -> None:
    conn.execute(update(Escalation).where(Escalation.alert_id == alert_id).values(**values))
