"""Alertmanager-style grouping: a storm of alerts for one team becomes a few messages.

A group is (scope, channel), the scope being the alert's team (or its rule without one). The
first alert of a quiet group waits `wait_s` for company; later ones wait until `interval_s`
after the group's last message; still-firing, unacknowledged alerts are repeated every
`repeat_s`. The timers live in `notification_groups`, so a restart keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from engine.config import Settings
from engine.store.db import orm
from engine.store.models import Channel, NotificationGroup


@dataclass(frozen=True)
class Timings:
    wait_s: float
    interval_s: float
    repeat_s: float

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0


def timings_for(channel: Channel | None, settings: Settings) -> Timings:
    """The channel's own grouping settings over the KLAXON_GROUP_* defaults."""
    own: dict[str, Any] = dict(channel.grouping or {}) if channel is not None else {}
    return Timings(
        wait_s=float(own.get("wait_s", settings.group_wait_s)),
        interval_s=float(own.get("interval_s", settings.group_interval_s)),
        repeat_s=float(own.get("repeat_s", settings.repeat_interval_s)),
    )


def scope_of(alert: dict[str, Any]) -> str:
    return str(alert.get("team") or f"rule:{alert.get('rule') or ''}")[:128]


def group_key(scope: str, channel: str) -> str:
    return f"{scope}|{channel}"[:256]


class GroupClock:
    """When each group's next message is due, for the rows one batch or job adds."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self._groups: dict[str, dict[str, Any]] = {}

    def _get(self, key: str, scope: str, channel: str) -> dict[str, Any]:
        if key not in self._groups:
            stmt = select(NotificationGroup).where(NotificationGroup.group_key == key)
            if self.conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            row = orm(self.conn).scalars(stmt).one_or_none()
            self._groups[key] = {
                "new": row is None,
                "dirty": False,
                "scope": scope,
                "channel": channel,
                "next_flush_at": row.next_flush_at if row else None,
                "last_sent_at": row.last_sent_at if row else None,
            }
        return self._groups[key]

    def flush_at(self, key: str, scope: str, channel: str, timings: Timings) -> datetime:
        """When a row joining group `key` now goes out (with the rest of its group)."""
        g = self._get(key, scope, channel)
        pending = g["next_flush_at"]
        if pending is not None and pending > self.now:
            return pending  # type: ignore[no-any-return]
        last = g["last_sent_at"]
        interval = timedelta(seconds=timings.interval_s)
        if last is None or self.now - last >= interval:
            flush = self.now + timedelta(seconds=timings.wait_s)
        else:
            flush = last + interval
        g["next_flush_at"] = flush
        g["dirty"] = True
        return flush

    def save(self) -> None:
        for key, g in self._groups.items():
            if not g["dirty"]:
                continue
            if g["new"]:
                self.conn.execute(
                    insert(NotificationGroup).values(
                        group_key=key,
                        scope=g["scope"],
                        channel=g["channel"],
                        next_flush_at=g["next_flush_at"],
                        updated_at=self.now,
                    )
                )
                g["new"] = False
            else:
                self.conn.execute(
                    update(NotificationGroup)
                    .where(NotificationGroup.group_key == key)
                    .values(next_flush_at=g["next_flush_at"], updated_at=self.now)
                )
            g["dirty"] = False


def mark_sent(conn: Connection, sent: dict[str, float], now: datetime) -> None:
    """Groups whose message goes now: {group_key: repeat_s}. The interval counts from here."""
    for key, repeat_s in sent.items():
        conn.execute(
            update(NotificationGroup)
            .where(NotificationGroup.group_key == key)
            .values(
                last_sent_at=now,
                next_flush_at=None,
                repeat_at=now + timedelta(seconds=repeat_s) if repeat_s > 0 else None,
                updated_at=now,
            )
        )
