"""The notification settings of teams and users (the only columns of theirs the notifier owns).

Teams: default channels, a fallback channel for critical alerts, an escalation policy, quiet
hours. Users: contact channels, a time zone, quiet hours. The teams and users pages and API
call these to change them.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.notify.errors import NotifyConfigError, NotifyNotFoundError
from engine.notify.quiet import check_quiet_hours
from engine.store.db import orm
from engine.store.models import Channel, EscalationPolicy, Team, User

_UNSET: Any = object()


def team_notify_dict(t: Team) -> dict[str, Any]:
    return {
        "team": t.name,
        "default_channels": list(t.default_channels or []),
        "fallback_channel": t.fallback_channel,
        "escalation_policy": t.escalation_policy,
        "quiet_hours": dict(t.quiet_hours or {}),
    }


def user_notify_dict(u: User) -> dict[str, Any]:
    return {
        "user": u.email,
        "contact_channels": list(u.contact_channels or []),
        "tz": u.tz,
        "quiet_hours": dict(u.quiet_hours or {}),
    }


def get_team_notify(conn: Connection, actor: Principal, team: str) -> dict[str, Any]:
    actor.require("teams.read")
    row = orm(conn).scalars(select(Team).where(Team.name == team)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no team named '{team}'", field="team")
    return team_notify_dict(row)


def get_user_notify(conn: Connection, actor: Principal, email: str) -> dict[str, Any]:
    """Users may read their own; reading someone else's needs users.read."""
    row = orm(conn).scalars(select(User).where(User.email == email)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no user with email '{email}'", field="user")
    if actor.user_id != row.id:
        actor.require("users.read")
    return user_notify_dict(row)


def _channels(conn: Connection, names: Any, field: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise NotifyConfigError(f"{field}: give a list of channel names", field=field)
    known = set(orm(conn).scalars(select(Channel.name).where(Channel.name.in_(names))))
    for i, name in enumerate(names):
        if name not in known:
            raise NotifyConfigError(
                f"{field}[{i}]: no channel named '{name}'", field=f"{field}[{i}]"
            )
    return list(dict.fromkeys(names))


def set_team_notify(
    conn: Connection,
    actor: Principal,
    team: str,
    *,
    default_channels: list[str] = _UNSET,
    fallback_channel: str | None = _UNSET,
    escalation_policy: str | None = _UNSET,
    quiet_hours: dict[str, Any] | None = _UNSET,
) -> dict[str, Any]:
    actor.require("teams.write")
    row = orm(conn).scalars(select(Team).where(Team.name == team)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no team named '{team}'", field="team")
    before = team_notify_dict(row)
    values: dict[str, Any] = {}
    if default_channels is not _UNSET:
        values["default_channels"] = _channels(conn, default_channels or [], "default_channels")
    if fallback_channel is not _UNSET:
        if (
            fallback_channel
            and not orm(conn)
            .scalars(select(Channel.id).where(Channel.name == fallback_channel))
            .first()
        ):
            raise NotifyConfigError(
                f"fallback_channel: no channel named '{fallback_channel}'",
                field="fallback_channel",
            )
        values["fallback_channel"] = fallback_channel or None
    if escalation_policy is not _UNSET:
        if (
            escalation_policy
            and not orm(conn)
            .scalars(select(EscalationPolicy.id).where(EscalationPolicy.name == escalation_policy))
            .first()
        ):
            raise NotifyConfigError(
                f"escalation_policy: no escalation policy named '{escalation_policy}'",
                field="escalation_policy",
            )
        values["escalation_policy"] = escalation_policy or None
    if quiet_hours is not _UNSET:
        values["quiet_hours"] = check_quiet_hours(quiet_hours)
    if values:
        conn.execute(update(Team).where(Team.id == row.id).values(**values))
    after = team_notify_dict(orm(conn).scalars(select(Team).where(Team.id == row.id)).one())
    audit.record(conn, actor, "team.notify", "team", team, before=before, after=after)
    return after


def set_user_notify(
    conn: Connection,
    actor: Principal,
    email: str,
    *,
    contact_channels: list[str] = _UNSET,
    tz: str = _UNSET,
    quiet_hours: dict[str, Any] | None = _UNSET,
) -> dict[str, Any]:
    """Users may change their own; changing someone else's needs users.write."""
    row = orm(conn).scalars(select(User).where(User.email == email)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no user with email '{email}'", field="user")
    if actor.user_id != row.id:
        actor.require("users.write")
    before = user_notify_dict(row)
    values: dict[str, Any] = {}
    if contact_channels is not _UNSET:
        values["contact_channels"] = _channels(conn, contact_channels or [], "contact_channels")
    if tz is not _UNSET:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise NotifyConfigError(
                f"tz: unknown time zone '{tz}'; use an IANA name like Europe/Berlin", field="tz"
            ) from None
        values["tz"] = tz
    if quiet_hours is not _UNSET:
        values["quiet_hours"] = check_quiet_hours(quiet_hours)
    if values:
        conn.execute(update(User).where(User.id == row.id).values(**values))
    after = user_notify_dict(orm(conn).scalars(select(User).where(User.id == row.id)).one())
    audit.record(conn, actor, "user.notify", "user", email, before=before, after=after)
    return after
