"""On-call rotations: who an `oncall:SCHEDULE` target pages at an instant, now and next.

A rotation hands over at a local time of day in the schedule's zone, daily or weekly, so a shift
across a daylight-saving change is 23 or 25 hours long and the hand-off stays at, say, 09:00.
Overrides (someone covers for a while) win over the rotation; the last one listed wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.notify.errors import NotifyConfigError

KINDS = {"daily": 1, "weekly": 7}


@dataclass(frozen=True)
class Shift:
    user: str
    start: datetime
    end: datetime
    source: str  # rotation | override

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "source": self.source,
        }


@dataclass(frozen=True)
class Override:
    user: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rotation:
    """A checked schedule: zone, shift length, first shift's date, hand-off time, users in turn."""

    tz: str
    days: int
    start: date
    handoff: time
    users: tuple[str, ...]
    overrides: tuple[Override, ...] = ()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as an instant; a time skipped by DST reads as before the jump."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _instant(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise NotifyConfigError(
                f"{field}: give an RFC 3339 instant, e.g. 2026-11-24T09:00:00Z", field=field
            ) from None
    if parsed.tzinfo is None:
        raise NotifyConfigError(f"{field}: give the instant's offset or Z", field=field)
    return parsed.astimezone(UTC)


def check_rotation(tz: str, rotation: dict[str, Any], overrides: list[Any] | None) -> Rotation:
    """Validate a schedule's settings; NotifyConfigError names the field (rotation.users[1])."""
    try:
        ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise NotifyConfigError(
            f"tz: unknown time zone '{tz}'; use an IANA name like Europe/Berlin", field="tz"
        ) from None
    if not isinstance(rotation, dict):
        raise NotifyConfigError("rotation: give {kind, users, start, handoff}", field="rotation")
    kind = rotation.get("kind", "weekly")
    if kind not in KINDS:
        raise NotifyConfigError(
            f"rotation.kind: '{kind}' is not daily or weekly", field="rotation.kind"
        )
    users = rotation.get("users")
    if (
        not isinstance(users, list)
        or not users
        or not all(isinstance(u, str) and u.strip() for u in users)
    ):
        raise NotifyConfigError(
            "rotation.users: give the users in turn, by email, at least one", field="rotation.users"
        )
    try:
        first = date.fromisoformat(str(rotation.get("start", "")))
    except ValueError:
        raise NotifyConfigError(
            "rotation.start: give the first shift's date as YYYY-MM-DD", field="rotation.start"
        ) from None
    try:
        handoff = time.fromisoformat(str(rotation.get("handoff", "09:00")))
    except ValueError:
        raise NotifyConfigError(
            "rotation.handoff: give the hand-off time of day as HH:MM", field="rotation.handoff"
        ) from None
    checked: list[Override] = []
    for i, o in enumerate(overrides or []):
        where = f"overrides[{i}]"
        if not isinstance(o, dict) or not isinstance(o.get("user"), str) or not o["user"].strip():
            raise NotifyConfigError(
                f"{where}.user: say who covers, by email", field=f"{where}.user"
            )
        start, end = (
            _instant(o.get("start"), f"{where}.start"),
            _instant(o.get("end"), f"{where}.end"),
        )
        if end <= start:
            raise NotifyConfigError(f"{where}.end: must be after start", field=f"{where}.end")
        checked.append(Override(o["user"].strip(), start, end))
    return Rotation(
        tz or "UTC", KINDS[kind], first, handoff, tuple(u.strip() for u in users), tuple(checked)
    )


def rotation_settings(r: Rotation) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stored JSON of a checked rotation and its overrides."""
    kind = next(k for k, v in KINDS.items() if v == r.days)
    rotation = {
        "kind": kind,
        "users": list(r.users),
        "start": r.start.isoformat(),
        "handoff": r.handoff.strftime("%H:%M"),
    }
    overrides = [{"user": o.user, "start": _iso(o.start), "end": _iso(o.end)} for o in r.overrides]
    return rotation, overrides


def rotation_shift(r: Rotation, at: datetime) -> Shift:
    """The rotation's shift holding `at`, ignoring overrides."""
    zone = ZoneInfo(r.tz)
    local_day = at.astimezone(zone).date()
    n = (local_day - r.start).days
    if at < _local(local_day, r.handoff, zone):
        n -= 1
    k = n // r.days  # floor: before the first shift the rotation runs backwards
    day = r.start + timedelta(days=k * r.days)
    begin = _local(day, r.handoff, zone)
    end = _local(day + timedelta(days=r.days), r.handoff, zone)
    return Shift(r.users[k % len(r.users)], begin, end, "rotation")


def on_call(r: Rotation, at: datetime) -> Shift:
    """Who is on call at `at`, from when and until when (overrides included)."""
    for o in reversed(r.overrides):
        if o.start <= at < o.end:
            return Shift(o.user, o.start, o.end, "override")
    shift = rotation_shift(r, at)
    later = [o.start for o in r.overrides if at < o.start < shift.end]
    earlier = [o.end for o in r.overrides if shift.start < o.end <= at]
    return replace(shift, start=max([shift.start, *earlier]), end=min([shift.end, *later]))


def now_and_next(r: Rotation, at: datetime) -> dict[str, Any]:
    current = on_call(r, at)
    following = on_call(r, current.end)
    return {"now": current.to_dict(), "next": following.to_dict()}
