"""Notification rows for people: a filtered list (status=dead, per alert), one with attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.notify.clock import iso, wall_clock
from engine.notify.errors import NotifyConfigError, NotifyNotFoundError
from engine.store.db import orm
from engine.store.models import NOTIFICATION_STATUSES, Notification, NotificationAttempt


def notification_dict(
    n: Notification, attempts: Sequence[NotificationAttempt] | None = None
) -> dict[str, Any]:
    payload = n.payload or {}
    out: dict[str, Any] = {
        "id": n.id,
        "alert_id": n.alert_id,
        "transition": n.transition,
        "target": n.target,
        "channel": n.channel,
        "status": n.status,
        "attempts": n.attempts,
        "next_attempt_at": iso(n.next_attempt_at),
        "last_error": n.last_error,
        "group_key": n.group_key,
        "severity": payload.get("severity"),
        "level": payload.get("level"),
        "user": payload.get("user"),
        "subject": n.subject,
        "fallback_of": n.fallback_of,
        "created_at": iso(n.created_at),
        "sent_at": iso(n.sent_at),
    }
    if attempts is not None:
        out["body"] = n.body
        out["attempt_log"] = [
            {"at": iso(a.at), "ok": a.ok, "error": a.error, "duration_ms": a.duration_ms}
            for a in attempts
        ]
    return out


def list_notifications(
    conn: Connection,
    actor: Principal,
    *,
    status: Sequence[str] = (),
    channel: Sequence[str] = (),
    transition: Sequence[str] = (),
    alert_id: int | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; the cursor continues after the last row of a page."""
    actor.require("alerts.read")
    for s in status:
        if s not in NOTIFICATION_STATUSES:
            raise NotifyConfigError(
                f"status: unknown status '{s}'; choose from {', '.join(NOTIFICATION_STATUSES)}",
                field="status",
            )
    if not 1 <= limit <= 1000:
        raise NotifyConfigError("limit: give 1 to 1000", field="limit")
    conds: list[ColumnElement[bool]] = []
    if status:
        conds.append(Notification.status.in_(list(status)))
    if channel:
        conds.append(Notification.channel.in_(list(channel)))
    if transition:
        conds.append(Notification.transition.in_(list(transition)))
    if alert_id is not None:
        conds.append(Notification.alert_id == alert_id)
    if target:
        conds.append(Notification.target == target)
    if since:
        conds.append(Notification.created_at >= since)
    if until:
        conds.append(Notification.created_at < until)
    if cursor:
        if not cursor.isdigit():
            raise NotifyConfigError("cursor: not a cursor this API gave out", field="cursor")
        conds.append(Notification.id < int(cursor))
    stmt = select(Notification).order_by(Notification.id.desc()).limit(limit + 1)
    if conds:
        stmt = stmt.where(and_(*conds))
    rows = list(orm(conn).scalars(stmt))
    page = rows[:limit]
    nxt = str(page[-1].id) if len(rows) > limit and page else None
    return [notification_dict(n) for n in page], nxt


def get_notification(conn: Connection, actor: Principal, notification_id: int) -> dict[str, Any]:
    """One row with its message and every attempt (when, whether it worked, the error)."""
    actor.require("alerts.read")
    session = orm(conn)
    row = session.scalars(
        select(Notification).where(Notification.id == notification_id)
    ).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no notification with id {notification_id}", field="id")
    attempts = session.scalars(
        select(NotificationAttempt)
        .where(NotificationAttempt.notification_id == notification_id)
        .order_by(NotificationAttempt.id)
    ).all()
    return notification_dict(row, attempts)


RETRYABLE = ("dead", "failed")


def retry_notification(
    conn: Connection, actor: Principal, notification_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Send a dead (or failed) delivery again now, with a fresh 5 attempts; the log is kept."""
    actor.require("alerts.write")
    row = (
        orm(conn)
        .scalars(select(Notification).where(Notification.id == notification_id))
        .one_or_none()
    )
    if row is None:
        raise NotifyNotFoundError(f"no notification with id {notification_id}", field="id")
    if row.status not in RETRYABLE or not row.channel:
        why = "it has no channel" if not row.channel else f"it is {row.status}"
        raise NotifyConfigError(
            f"id: notification {notification_id} cannot be retried: {why} "
            f"(only {' or '.join(RETRYABLE)} deliveries to a channel can)",
            field="id",
        )
    before = notification_dict(row)
    conn.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status="pending", attempts=0, next_attempt_at=now or wall_clock())
    )
    after = get_notification(conn, actor, notification_id)
    audit.record(
        conn, actor, "notification.retry", "notification", str(notification_id), before=before
    )
    return after
