"""Quiet hours: a recurring local-time window in which non-critical messages wait.

Stored on users and teams as {"days": "mon-fri", "start": "22:00", "end": "07:00", "tz": ZONE};
days and times read as in a silence's `during` (DSL.md §5): a window that crosses midnight
belongs to the day it starts, and the zone's daylight-saving changes are followed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dsl import ast
from dsl.compiler import DuringSpec, compile_during
from dsl.errors import DslError
from engine.notify.errors import NotifyConfigError

_KEYS = ("days", "start", "end", "tz")


def check_quiet_hours(value: dict[str, Any] | None, field: str = "quiet_hours") -> dict[str, str]:
    """The normalized quiet hours, {} for none; NotifyConfigError names the bad part."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise NotifyConfigError(
            f'{field}: give {{"days": "mon-fri", "start": "22:00", "end": "07:00", "tz": ZONE}}',
            field=field,
        )
    for key in value:
        if key not in _KEYS:
            raise NotifyConfigError(
                f"{field}.{key}: unknown; use {', '.join(_KEYS)}", field=f"{field}.{key}"
            )
    out = {"days": str(value.get("days") or "daily")}
    for key in ("start", "end"):
        text = value.get(key)
        if (
            not isinstance(text, str)
            or len(text.split(":")) != 2
            or not all(p.isdigit() for p in text.split(":"))
        ):
            raise NotifyConfigError(
                f"{field}.{key}: give a time of day as HH:MM", field=f"{field}.{key}"
            )
        out[key] = text
    if value.get("tz"):
        out["tz"] = str(value["tz"])
    try:
        _spec(out, "UTC")
    except DslError as err:
        which = _culprit(err.message, out)
        raise NotifyConfigError(
            f"{field}.{which}: {err.message}", field=f"{field}.{which}"
        ) from None
    return out


def _culprit(message: str, quiet: dict[str, str]) -> str:
    """Which setting a `during` complaint is about."""
    if "time zone" in message:
        return "tz"
    if "time of day" in message:
        return "start" if f"'{quiet['start']}'" in message else "end"
    if "is empty" in message:
        return "end"
    return "days"


def _spec(quiet: dict[str, Any], default_tz: str) -> DuringSpec:
    days = str(quiet.get("days") or "daily").replace(" ", "")
    clock = f"{quiet['start']}-{quiet['end']}"
    return compile_during(ast.During(days=days, clock=clock, tz=quiet.get("tz") or default_tz))


def quiet_until(
    quiet: dict[str, Any] | None, at: datetime, default_tz: str = "UTC"
) -> datetime | None:
    """If `at` falls in the quiet hours, the instant they end (UTC); else None."""
    if not quiet or "start" not in quiet or "end" not in quiet:
        return None
    try:
        spec = _spec(quiet, default_tz or "UTC")
    except DslError:
        return None  # stored settings were checked on save; an odd one must not hold messages
    zone = ZoneInfo(spec.tz)
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    weekday = local.weekday()
    start, end = spec.start_minute, spec.end_minute
    if start < end:
        if weekday not in spec.days or not start <= minute < end:
            return None
        end_day = local.date()
    elif weekday in spec.days and minute >= start:
        end_day = local.date() + timedelta(days=1)
    elif (weekday - 1) % 7 in spec.days and minute < end:
        end_day = local.date()
    else:
        return None
    end_day += timedelta(days=end // 1440)
    ends = datetime.combine(end_day, time((end % 1440) // 60, end % 60), tzinfo=zone).astimezone(
        UTC
    )
    return ends if ends > at else None
