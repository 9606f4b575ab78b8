"""From the names rules and policies use to the channels a message goes to.

A target is `channel:NAME`, `team:NAME` (the team's default channels), `user:EMAIL` (their
contact channels), `oncall:SCHEDULE` (whoever is on call then), or a bare NAME: a channel if
one has that name, else a team, else a user. Each delivery carries the quiet hours that apply:
the user's for people, the team's for team and channel targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from engine.notify.errors import NotifyError
from engine.notify.oncall import Rotation, check_rotation, on_call
from engine.store.db import orm
from engine.store.models import Channel, EscalationPolicy, Schedule, Team, User

SCOPES = ("channel", "team", "user", "oncall")


@dataclass(frozen=True)
class Delivery:
    """One channel a target resolved to (or why it did not resolve)."""

    target: str
    channel: str
    quiet: dict[str, Any] = field(default_factory=dict)
    tz: str = "UTC"
    user: str | None = None
    error: str | None = None


def split_target(target: str) -> tuple[str | None, str]:
    scope, sep, name = target.partition(":")
    return (scope, name) if sep and scope in SCOPES else (None, target)


class Directory:
    """Channels, teams, users, schedules and policies, read once per batch or job."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._channels: dict[str, Channel] | None = None
        self._teams: dict[str, Team] | None = None
        self._users: dict[str, User | None] = {}
        self._rotations: dict[str, Rotation | None] = {}
        self._policies: dict[str, EscalationPolicy | None] = {}

    def channel(self, name: str) -> Channel | None:
        if self._channels is None:
            self._channels = {c.name: c for c in orm(self.conn).scalars(select(Channel))}
        return self._channels.get(name)

    def team(self, name: str | None) -> Team | None:
        if not name:
            return None
        if self._teams is None:
            self._teams = {t.name: t for t in orm(self.conn).scalars(select(Team))}
        return self._teams.get(name)

    def user(self, ref: str) -> User | None:
        """By email, or else by name; inactive users are nobody."""
        if ref not in self._users:
            rows = (
                orm(self.conn)
                .scalars(
                    select(User).where(or_(User.email == ref, User.name == ref), User.is_active)
                )
                .all()
            )
            exact = [u for u in rows if u.email == ref] or rows
            self._users[ref] = exact[0] if len(exact) == 1 else None
        return self._users[ref]

    def rotation(self, name: str) -> Rotation | None:
        if name not in self._rotations:
            row = (
                orm(self.conn).scalars(select(Schedule).where(Schedule.name == name)).one_or_none()
            )
            try:
                self._rotations[name] = (
                    check_rotation(row.tz, row.rotation, row.overrides) if row else None
                )
            except NotifyError:
                self._rotations[name] = None
        return self._rotations[name]

    def policy(self, name: str | None) -> EscalationPolicy | None:
        if not name:
            return None
        if name not in self._policies:
            self._policies[name] = (
                orm(self.conn)
                .scalars(select(EscalationPolicy).where(EscalationPolicy.name == name))
                .one_or_none()
            )
        return self._policies[name]

    # ---------------------------------------------------------------- resolving

    def exists(self, target: str) -> str | None:
        """None when the target names something that exists, else why not (for saving policies)."""
        scope, name = split_target(target)
        found: object | None
        if scope == "channel":
            found = self.channel(name)
        elif scope == "team":
            found = self.team(name)
        elif scope == "user":
            found = self.user(name)
        elif scope == "oncall":
            found = self.rotation(name)
        else:
            found = self.channel(name) or self.team(name) or self.user(name)
        if found is None:
            what = {"oncall": "schedule", None: "channel, team or user"}.get(scope, scope)
            return f"no {what} named '{name}'"
        return None

    def resolve(self, target: str, team: str | None, at: datetime) -> list[Delivery]:
        """The channels `target` reaches at `at`; one Delivery with an error if none."""
        scope, name = split_target(target)
        if scope is None:
            if self.channel(name) is not None:
                scope = "channel"
            elif self.team(name) is not None:
                scope = "team"
            elif self.user(name) is not None:
                scope = "user"
            else:
                return [Delivery(target, "", error=f"no channel, team or user named '{name}'")]
        if scope == "channel":
            owner = self.team(team)
            return [Delivery(target, name, quiet=dict(owner.quiet_hours or {}) if owner else {})]
        if scope == "team":
            found = self.team(name)
            if found is None:
                return [Delivery(target, "", error=f"no team named '{name}'")]
            channels = [str(c) for c in found.default_channels or []]
            if not channels:
                return [Delivery(target, "", error=f"team '{name}' has no default channels")]
            return [Delivery(target, c, quiet=dict(found.quiet_hours or {})) for c in channels]
        if scope == "oncall":
            rotation = self.rotation(name)
            if rotation is None:
                return [Delivery(target, "", error=f"no schedule named '{name}'")]
            return self._user_channels(target, on_call(rotation, at).user)
        return self._user_channels(target, name)

    def _user_channels(self, target: str, ref: str) -> list[Delivery]:
        person = self.user(ref)
        if person is None:
            return [Delivery(target, "", error=f"no active user '{ref}'")]
        channels = [str(c) for c in person.contact_channels or []]
        if not channels:
            return [
                Delivery(
                    target,
                    "",
                    user=person.email,
                    error=f"user '{person.email}' has no contact channels",
                )
            ]
        quiet = dict(person.quiet_hours or {})
        return [
            Delivery(target, c, quiet=quiet, tz=person.tz or "UTC", user=person.email)
            for c in channels
        ]

    def expand(self, targets: list[str], team: str | None, at: datetime) -> list[Delivery]:
        """Every target's channels, each channel once (the first target naming it wins)."""
        out: list[Delivery] = []
        seen: set[str] = set()
        for target in targets:
            for d in self.resolve(target, team, at):
                key = d.channel or f"?{d.target}"
                if key in seen:
                    continue
                seen.add(key)
                out.append(d)
        return out
