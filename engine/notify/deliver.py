"""Delivery: due notification rows go out, each outcome recorded on its row.

A round claims the due rows in one short transaction (marking them `sending` under a lease, so
a second worker skips them and a crash only delays them), sends the messages in parallel outside
any transaction, and records every attempt in another: sent; or failed, retried after an
exponential backoff; or dead after the fifth attempt, when a critical alert's message goes to
its team's fallback channel instead.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from engine.auth.principal import Principal
from engine.config import Settings
from engine.crypto import SecretKeyError
from engine.notify.channels import channel_url
from engine.notify.clock import Clock, wall_clock
from engine.notify.errors import NotifyNotFoundError
from engine.notify.grouping import mark_sent, timings_for
from engine.notify.messages import Message, apply_rate_limits, assemble, compose
from engine.notify.planner import Planner
from engine.notify.templates import render_one
from engine.notify.transport import Outcome, send
from engine.store.db import Database, orm
from engine.store.models import Alert, Channel, Notification, NotificationAttempt

log = logging.getLogger("klaxon.notify")

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=2)
DUE = ("pending", "failed", "held", "sending")  # `sending` only once its lease has run out
GROUP_LIMIT = 20_000  # rows one grouped message may carry (its text lists the first ones)


@dataclass
class Round:
    """What one delivery round did."""

    claimed: int = 0
    messages: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    suppressed: int = 0
    deferred: int = 0


def _model(row: Notification) -> dict[str, Any]:
    return {c: getattr(row, c) for c in ("transition", "channel", "payload", "fallback_of")}


class Deliverer:
    """Sends what is due. One per worker process; `deliver_due` is the scheduler's job."""

    def __init__(self, db: Database, settings: Settings, clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or wall_clock
        self.pool = ThreadPoolExecutor(
            max(1, settings.notify_threads), thread_name_prefix="klaxon-notify"
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def deliver_due(self, limit: int = 500) -> Round:
        report = Round()
        now = self.clock()
        with self.db.connect() as conn:
            messages = self._claim(conn, now, limit, report)
        if not messages:
            return report
        outcomes = list(self.pool.map(self._send, messages))
        with self.db.connect() as conn:
            self._record(conn, messages, outcomes, self.clock(), report)
        return report

    # ---------------------------------------------------------------- claiming

    def _claim(self, conn: Connection, now: datetime, limit: int, report: Round) -> list[Message]:
        session = orm(conn)
        stmt = (
            select(Notification)
            .where(Notification.status.in_(DUE), Notification.next_attempt_at <= now)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        if len(rows) == limit:
            rows += self._rest_of_groups(conn, rows, now)
        report.claimed = len(rows)
        if not rows:
            return []
        names = {r.channel for r in rows}
        channels = {
            c.name: c for c in session.scalars(select(Channel).where(Channel.name.in_(names)))
        }
        alert_ids = {r.alert_id for r in rows if r.alert_id}
        alerts = {
            i: (is_open, status)
            for i, is_open, status in conn.execute(
                select(Alert.id, Alert.is_open, Alert.status).where(Alert.id.in_(alert_ids))
            )
        }
        of_ids = {(r.payload or {}).get("of") for r in rows if r.transition == "resolved"} - {None}
        siblings = {
            i: (status, due)
            for i, status, due in conn.execute(
                select(Notification.id, Notification.status, Notification.next_attempt_at).where(
                    Notification.id.in_(of_ids)
                )
            )
        }
        closed: list[tuple[Notification, str, str]] = []
        deferred: list[tuple[Notification, datetime]] = []
        ready: list[Notification] = []
        for r in rows:
            verdict = self._check(
                r, channels.get(r.channel), alerts.get(r.alert_id or 0), siblings, now
            )
            if verdict is None:
                ready.append(r)
            elif isinstance(verdict, datetime):
                deferred.append((r, verdict))
            else:
                closed.append((r, *verdict))
        urls, unreadable = self._urls(channels)
        closed += [(r, "dead", unreadable[r.channel]) for r in ready if r.channel in unreadable]
        ready = [r for r in ready if r.channel not in unreadable]
        messages, folded, windows = apply_rate_limits(assemble(ready, channels), now)
        deferred += folded
        self._close(conn, closed, now, report)
        self._defer(conn, deferred, {id(r) for r, _ in folded})
        report.deferred = len(deferred)
        for channel_id, window in windows.items():
            conn.execute(
                update(Channel)
                .where(Channel.id == channel_id)
                .values(window_started_at=window.started_at, window_count=window.count)
            )
        for m in messages:
            m.url = urls[m.channel.name]
            compose(m)
        claimed = [r.id for m in messages for r in m.rows]
        for i in range(0, len(claimed), 500):
            conn.execute(
                update(Notification)
                .where(Notification.id.in_(claimed[i : i + 500]))
                .values(status="sending", next_attempt_at=now + LEASE)
            )
        groups = {
            m.group_key: timings_for(m.channel, self.settings).repeat_s
            for m in messages
            if m.group_key
        }
        mark_sent(conn, {k: v for k, v in groups.items() if k}, now)
        report.messages = len(messages)
        return messages

    @staticmethod
    def _rest_of_groups(
        conn: Connection, rows: list[Notification], now: datetime
    ) -> list[Notification]:
        """A group's due rows go out as one message, so they join the round past its limit
        (else a storm of 10,000 would be cut into a message per 500 rows)."""
        keys = {r.group_key for r in rows if r.group_key}
        if not keys:
            return []
        have = {r.id for r in rows}
        stmt = (
            select(Notification)
            .where(
                Notification.status.in_(DUE),
                Notification.next_attempt_at <= now,
                Notification.group_key.in_(keys),
            )
            .order_by(Notification.id)
            .limit(GROUP_LIMIT)
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return [r for r in orm(conn).scalars(stmt) if r.id not in have]

    @staticmethod
    def _urls(channels: dict[str, Channel]) -> tuple[dict[str, str], dict[str, str]]:
        """Clear URLs by channel name, and why a channel's cannot be read (a changed key)."""
        urls: dict[str, str] = {}
        unreadable: dict[str, str] = {}
        for name, channel in channels.items():
            try:
                urls[name] = channel_url(channel)
            except SecretKeyError as err:
                unreadable[name] = str(err)
        return urls, unreadable

    @staticmethod
    def _check(
        r: Notification,
        channel: Channel | None,
        alert: tuple[bool, str] | None,
        siblings: dict[int, tuple[str, datetime | None]],
        now: datetime,
    ) -> datetime | tuple[str, str] | None:
        """None: send it. A datetime: not yet, try then. (status, why): do not send it at all."""
        if channel is None:
            return ("dead", f"channel '{r.channel}' no longer exists")
        if not channel.is_enabled:
            return ("suppressed", f"channel '{r.channel}' is disabled")
        if alert is not None:
            is_open, status = alert
            if r.transition in ("escalated", "repeated") and (not is_open or status != "active"):
                return (
                    "suppressed",
                    f"the alert is {status} now: no {r.transition} message needed",
                )
            if r.transition == "fired" and r.status == "held" and not is_open:
                return ("suppressed", "the alert resolved during quiet hours")
        if r.transition == "resolved":
            sibling = siblings.get((r.payload or {}).get("of") or 0)
            if sibling is not None and sibling[0] != "sent":
                if sibling[0] in ("dead", "suppressed"):
                    return ("suppressed", "the firing message was never delivered")
                # Resolved must not overtake its firing message: wait for that one's outcome
                # (one in flight elsewhere ends in moments; its lease says nothing of when).
                if sibling[0] == "sending":
                    return now + timedelta(seconds=1)
                return max(sibling[1] or now, now) + timedelta(seconds=1)
        return None

    def _close(
        self,
        conn: Connection,
        closed: list[tuple[Notification, str, str]],
        now: datetime,
        report: Round,
    ) -> None:
        if not closed:
            return
        conn.execute(
            update(Notification)
            .where(Notification.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"), last_error=bindparam("b_error"), next_attempt_at=None
            )
            .execution_options(synchronize_session=False),
            [{"b_id": r.id, "b_status": status, "b_error": why} for r, status, why in closed],
        )
        report.suppressed += sum(1 for _, status, _ in closed if status == "suppressed")
        report.dead += sum(1 for _, status, _ in closed if status == "dead")
        self._fallbacks(conn, [r for r, status, _ in closed if status == "dead"], now)

    @staticmethod
    def _defer(
        conn: Connection, deferred: list[tuple[Notification, datetime]], folded: set[int]
    ) -> None:
        if not deferred:
            return
        conn.execute(
            update(Notification)
            .where(Notification.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_at"),
                payload=bindparam("b_payload"),
            )
            .execution_options(synchronize_session=False),
            [
                {
                    "b_id": r.id,
                    "b_status": "failed" if r.status == "failed" else "pending",
                    "b_at": at,
                    "b_payload": {**(r.payload or {}), "digest": True}
                    if id(r) in folded
                    else r.payload,
                }
                for r, at in deferred
            ],
        )

    def _fallbacks(self, conn: Connection, dead: list[Notification], now: datetime) -> None:
        if not dead:
            return
        planner = Planner(conn, self.settings, now)
        rows = [f for r in dead if (f := planner.fallback(_model(r), r.id)) is not None]
        if rows:
            planner.insert(rows)

    # ---------------------------------------------------------------- sending and recording

    @staticmethod
    def _send(m: Message) -> Outcome:
        return send(m.url, m.title, m.body, kind=m.channel.kind, notify_type=m.notify_type)

    def _record(
        self,
        conn: Connection,
        messages: list[Message],
        outcomes: list[Outcome],
        now: datetime,
        report: Round,
    ) -> None:
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        dead: list[Notification] = []
        base = max(0.0, self.settings.retry_base_s)
        for m, outcome in zip(messages, outcomes, strict=True):
            if not outcome.ok:
                log.warning("delivery to %s failed: %s", m.channel.url_masked, outcome.error)
            for r in m.rows:
                n = r.attempts + 1
                attempts.append(
                    {
                        "notification_id": r.id,
                        "at": now,
                        "ok": outcome.ok,
                        "error": outcome.error,
                        "duration_ms": outcome.duration_ms,
                    }
                )
                if outcome.ok:
                    status, next_at, report.sent = "sent", None, report.sent + 1
                elif n >= MAX_ATTEMPTS:
                    status, next_at, report.dead = "dead", None, report.dead + 1
                    dead.append(r)
                else:
                    status, report.failed = "failed", report.failed + 1
                    next_at = now + timedelta(seconds=base * 2 ** (n - 1))
                updates.append(
                    {
                        "b_id": r.id,
                        "b_status": status,
                        "b_n": n,
                        "b_next": next_at,
                        "b_error": outcome.error,
                        "b_sent": now if outcome.ok else None,
                    }
                )
        conn.execute(insert(NotificationAttempt), attempts)
        conn.execute(
            update(Notification)
            .where(Notification.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_n"),
                next_attempt_at=bindparam("b_next"),
                last_error=bindparam("b_error"),
                sent_at=bindparam("b_sent"),
            )
            .execution_options(synchronize_session=False),
            updates,
        )
        self._fallbacks(conn, dead, now)


# ---------------------------------------------------------------- direct messages


def _direct(
    db: Database,
    channel_name: str,
    transition: str,
    title: str | None,
    body: str | None,
    attachments: list[Path] | None,
    now: datetime,
) -> tuple[int, Outcome]:
    """One synchronous attempt, recorded as a row: reports and channel tests."""
    with db.connect() as conn:
        channel = (
            orm(conn).scalars(select(Channel).where(Channel.name == channel_name)).one_or_none()
        )
        if channel is None:
            raise NotifyNotFoundError(f"no channel named '{channel_name}'", field="name")
        url, kind = channel_url(channel), channel.kind
        if title is None or body is None:
            sample = {
                "id": 0,
                "rule": "klaxon_test",
                "title": f"Test message for channel {channel_name}",
                "severity": "info",
                "description": "If you can read this, the channel works.",
            }
            title, body = render_one(kind, "test", sample)
        row_id = conn.execute(
            insert(Notification)
            .values(
                alert_id=None,
                transition=transition,
                target=channel_name,
                channel=channel_name,
                status="sending",
                attempts=0,
                subject=title,
                body=body,
                created_at=now,
                payload={"attachments": [p.name for p in attachments or []]},
                next_attempt_at=now + LEASE,
            )
            .returning(Notification.id)
        ).scalar_one()
    fmt = "text" if transition == "report" else None
    outcome = send(url, title, body, kind=kind, attachments=attachments, body_format=fmt)
    with db.connect() as conn:
        conn.execute(
            insert(NotificationAttempt).values(
                notification_id=row_id,
                at=now,
                ok=outcome.ok,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        conn.execute(
            update(Notification)
            .where(Notification.id == row_id)
            .values(
                status="sent" if outcome.ok else "dead",
                attempts=1,
                next_attempt_at=None,
                last_error=outcome.error,
                sent_at=now if outcome.ok else None,
            )
        )
    return row_id, outcome


def send_message(
    db: Database,
    channel_name: str,
    title: str,
    body: str,
    attachments: list[Path] | None = None,
) -> bool:
    """Send one message now, one attempt, recorded as a `report` row. False if it failed.

    For scheduled reports (PDF attachments). An unknown channel raises NotifyNotFoundError.
    """
    _, outcome = _direct(db, channel_name, "report", title, body, attachments, wall_clock())
    return outcome.ok


def send_test_message(
    db: Database, actor: Principal, channel_name: str, clock: Clock | None = None
) -> dict[str, Any]:
    """Send a test message through a channel now; say whether it arrived and why not."""
    actor.require("integrations.write")
    row_id, outcome = _direct(db, channel_name, "test", None, None, None, (clock or wall_clock)())
    return {
        "ok": outcome.ok,
        "error": outcome.error,
        "notification_id": row_id,
        "duration_ms": outcome.duration_ms,
    }
