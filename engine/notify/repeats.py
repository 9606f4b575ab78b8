"""The repeat interval: a group whose alerts still fire unacknowledged is reminded of them.

When a group's `repeat_at` passes, each of its alerts that is still active (open, nobody
acknowledged it) gets a `repeated` row for the channels its firing message reached; they go
out together as one grouped message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from engine.config import Settings
from engine.notify.clock import Clock, wall_clock
from engine.notify.planner import Planner, alert_snapshot
from engine.notify.targets import Delivery
from engine.store.db import Database, orm
from engine.store.models import Alert, Notification, NotificationGroup


def repeat_due(
    db: Database, settings: Settings, clock: Clock | None = None, limit: int = 100
) -> int:
    """Queue reminders for groups whose repeat interval passed; returns rows queued."""
    now = (clock or wall_clock)()
    with db.connect() as conn:
        return repeat_due_in(conn, settings, now, limit)


def repeat_due_in(conn: Connection, settings: Settings, now: datetime, limit: int = 100) -> int:
    stmt = (
        select(NotificationGroup)
        .where(NotificationGroup.repeat_at <= now)
        .order_by(NotificationGroup.repeat_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # two workers never remind twice
    groups = list(orm(conn).scalars(stmt))
    planner = Planner(conn, settings, now)
    rows: list[dict[str, Any]] = []
    for g in groups:
        conn.execute(
            update(NotificationGroup)
            .where(NotificationGroup.group_key == g.group_key)
            .values(repeat_at=None, updated_at=now)
        )
        sent = orm(conn).execute(
            select(Notification, Alert)
            .join(Alert, Alert.id == Notification.alert_id)
            .where(
                Notification.group_key == g.group_key,
                Notification.status == "sent",
                Notification.transition.in_(("fired", "repeated")),
                Alert.is_open,
                Alert.status == "active",
            )
            .order_by(Notification.id.desc())
        )
        seen: set[tuple[int, str]] = set()
        for n, alert in sent:
            if (alert.id, n.channel) in seen:
                continue
            seen.add((alert.id, n.channel))
            p = n.payload or {}
            delivery = Delivery(
                n.target,
                n.channel,
                quiet=p.get("quiet") or {},
                tz=p.get("tz") or "UTC",
                user=p.get("user"),
            )
            rows.append(planner.row(alert_snapshot(alert), "repeated", delivery, due=now))
    planner.insert(rows)
    return len(rows)
