"""Due rows into messages: one row alone, a group's rows together, or a channel's digest.

A channel's rate limit counts messages in a one-minute window; messages past it are folded
into one digest sent when the window ends (the digest goes first in its window).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.notify.templates import render_many
from engine.notify.transport import notify_type
from engine.store.models import Channel, Notification

RATE_WINDOW = timedelta(minutes=1)
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass
class Message:
    """What one Apprise call sends; every row in it shares the outcome."""

    key: str  # row:ID, group:GROUP_KEY or digest:CHANNEL
    channel: Channel
    rows: list[Notification] = field(default_factory=list)
    url: str = ""
    title: str = ""
    body: str = ""
    notify_type: str = "info"

    @property
    def group_key(self) -> str | None:
        return self.key.removeprefix("group:") if self.key.startswith("group:") else None

    @property
    def is_digest(self) -> bool:
        return self.key.startswith("digest:")

    def rank(self) -> tuple[bool, int, int]:
        """Digests first, then the most severe, then the oldest."""
        return (not self.is_digest, -max(_rank(r) for r in self.rows), min(r.id for r in self.rows))


def _rank(r: Notification) -> int:
    return SEVERITY_RANK.get(str((r.payload or {}).get("severity", "")), 0)


def assemble(rows: list[Notification], channels: dict[str, Channel]) -> list[Message]:
    """Group sendable rows into messages (rows of one group, or one channel's digest, together)."""
    messages: dict[str, Message] = {}
    for r in rows:
        channel = channels[r.channel]
        if (r.payload or {}).get("digest"):
            key = f"digest:{channel.name}"
        elif r.group_key:
            key = f"group:{r.group_key}"
        else:
            key = f"row:{r.id}"
        messages.setdefault(key, Message(key, channel)).rows.append(r)
    return list(messages.values())


@dataclass
class Window:
    """A channel's rate-limit window after this round: its start and messages counted."""

    started_at: datetime
    count: int


def apply_rate_limits(
    messages: list[Message], now: datetime
) -> tuple[list[Message], list[tuple[Notification, datetime]], dict[int, Window]]:
    """(messages to send now, rows folded into the digest with when it goes, windows to save)."""
    by_channel: dict[int, list[Message]] = defaultdict(list)
    for m in messages:
        by_channel[m.channel.id].append(m)
    go: list[Message] = []
    folded: list[tuple[Notification, datetime]] = []
    windows: dict[int, Window] = {}
    for msgs in by_channel.values():
        channel = msgs[0].channel
        limit = channel.rate_limit_per_min
        if not limit:
            go += msgs
            continue
        start, count = channel.window_started_at, channel.window_count or 0
        if start is None or now - start >= RATE_WINDOW:
            start, count = now, 0
        msgs.sort(key=Message.rank)
        budget = max(0, limit - count)
        go += msgs[:budget]
        for m in msgs[budget:]:
            folded += [(r, start + RATE_WINDOW) for r in m.rows]
        windows[channel.id] = Window(start, count + min(budget, len(msgs)))
    return go, folded, windows


def compose(m: Message) -> None:
    """Title and body: a lone row keeps its own; several are listed under a heading."""
    worst = max(m.rows, key=lambda r: (r.transition != "resolved", _rank(r)))
    m.notify_type = notify_type(worst.transition, (worst.payload or {}).get("severity"))
    if len(m.rows) == 1:
        m.title, m.body = m.rows[0].subject, m.rows[0].body
        return
    items: list[dict[str, Any]] = [
        {"transition": r.transition, "alert": (r.payload or {}).get("alert") or {}} for r in m.rows
    ]
    if m.is_digest:
        heading = (
            f"Digest for {m.channel.name} ({len(m.rows)} notifications held back by its limit "
            f"of {m.channel.rate_limit_per_min} messages a minute)"
        )
    else:
        heading = str((m.rows[0].payload or {}).get("scope") or m.channel.name)
    m.title, m.body = render_many(m.channel.kind, heading, items)
