"""The wall clock the notifier reads, injectable so tests can move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as the rest of the API writes instants."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
