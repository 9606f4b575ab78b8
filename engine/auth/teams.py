"""Teams: who belongs together, for routing (`team NAME` in rules) and for requiring MFA.

The notification columns of a team (default channels, fallback, escalation policy, quiet
hours) belong to engine/notify; this module manages the team itself and its members.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from engine.auth import audit
from engine.auth.errors import ConflictError, InvalidInputError, NotFoundError
from engine.auth.principal import Principal
from engine.store.db import Database, orm
from engine.store.models import Team, TeamMember, User

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TEAM_SORTS = {"name": Team.name, "created_at": Team.created_at, "id": Team.id}


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a team name: up to 128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            field="name",
        )
    return name


def _members(conn: Connection, team_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in team_ids}
    if team_ids:
        rows = conn.execute(
            select(TeamMember.team_id, User.id, User.email, User.name, User.role)
            .join(User, User.id == TeamMember.user_id)
            .where(TeamMember.team_id.in_(list(team_ids)))
            .order_by(User.email)
        )
        for team_id, user_id, email, name, role in rows:
            out[team_id].append({"id": user_id, "email": email, "name": name, "role": role})
    return out


def team_dict(t: Team, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "require_mfa": t.require_mfa,
        "members": members,
        "created_at": t.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _load(conn: Connection, team_id: int) -> Team:
    row = orm(conn).scalars(select(Team).where(Team.id == team_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no team with id {team_id}", field="id")
    return row


def _user_ids(conn: Connection, emails: Sequence[str]) -> list[int]:
    wanted = [e.strip().lower() for e in dict.fromkeys(emails)]
    found = dict(conn.execute(select(User.email, User.id).where(User.email.in_(wanted))).all())
    missing = [e for e in wanted if e not in found]
    if missing:
        raise InvalidInputError(f"no user with email {missing[0]!r}", field="members")
    return [found[e] for e in wanted]


def _get(conn: Connection, team_id: int) -> dict[str, Any]:
    return team_dict(_load(conn, team_id), _members(conn, [team_id])[team_id])


def create_team(
    db: Database,
    actor: Principal,
    *,
    name: str,
    require_mfa: bool = False,
    members: Sequence[str] = (),
) -> dict[str, Any]:
    """A new team; `members` are users' emails."""
    actor.require("teams.write")
    check_name(name)
    with db.connect() as conn:
        if conn.execute(select(Team.id).where(Team.name == name)).first() is not None:
            raise ConflictError(f"a team named {name!r} already exists", field="name")
        ids = _user_ids(conn, members)
        team_id = conn.execute(
            insert(Team)
            .values(name=name, require_mfa=require_mfa, created_at=datetime.now(UTC))
            .returning(Team.id)
        ).scalar_one()
        for user_id in ids:
            conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))
        after = {
            "name": name,
            "require_mfa": require_mfa,
            "members": [e.strip().lower() for e in dict.fromkeys(members)],
        }
        audit.record(conn, actor, "team.create", "team", team_id, after=after)
        return _get(conn, team_id)


@dataclass(frozen=True)
class TeamQuery:
    q: str | None = None
    sort: str = "name"
    descending: bool = False
    limit: int = 100
    offset: int = 0

    def validate(self) -> None:
        if self.sort not in TEAM_SORTS:
            raise InvalidInputError(
                f"cannot sort by {self.sort!r}; choose one of {', '.join(TEAM_SORTS)}", field="sort"
            )
        if not 1 <= self.limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000", field="limit")
        if self.offset < 0:
            raise InvalidInputError("offset must not be negative", field="offset")


def list_teams(
    db: Database, actor: Principal, query: TeamQuery | None = None
) -> list[dict[str, Any]]:
    actor.require("teams.read")
    query = query or TeamQuery()
    query.validate()
    stmt = select(Team)
    if query.q:
        stmt = stmt.where(func.lower(Team.name).contains(query.q.lower(), autoescape=True))
    column = TEAM_SORTS[query.sort]
    order = (column.desc(), Team.id.desc()) if query.descending else (column.asc(), Team.id.asc())
    with db.read() as conn:
        rows = (
            orm(conn).scalars(stmt.order_by(*order).limit(query.limit).offset(query.offset)).all()
        )
        members = _members(conn, [t.id for t in rows])
    return [team_dict(t, members[t.id]) for t in rows]


def get_team(db: Database, actor: Principal, team_id: int) -> dict[str, Any]:
    actor.require("teams.read")
    with db.read() as conn:
        return _get(conn, team_id)


def update_team(
    db: Database,
    actor: Principal,
    team_id: int,
    *,
    name: str | None = None,
    require_mfa: bool | None = None,
    members: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Rename, require MFA, or replace the member list (emails)."""
    actor.require("teams.write")
    if name is not None:
        check_name(name)
    with db.connect() as conn:
        before = _get(conn, team_id)
        values: dict[str, Any] = {}
        if name is not None and name != before["name"]:
            if conn.execute(select(Team.id).where(Team.name == name)).first() is not None:
                raise ConflictError(f"a team named {name!r} already exists", field="name")
            values["name"] = name
        if require_mfa is not None:
            values["require_mfa"] = require_mfa
        if values:
            conn.execute(update(Team).where(Team.id == team_id).values(**values))
        if members is not None:
            ids = _user_ids(conn, members)
            conn.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
            for user_id in ids:
                conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))
        after = _get(conn, team_id)
        if _brief(after) != _brief(before):
            audit.record(
                conn,
                actor,
                "team.update",
                "team",
                team_id,
                before=_brief(before),
                after=_brief(after),
            )
        return after


def _brief(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": t["name"],
        "require_mfa": t["require_mfa"],
        "members": [m["email"] for m in t["members"]],
    }


def delete_team(db: Database, actor: Principal, team_id: int) -> None:
    actor.require("teams.write")
    with db.connect() as conn:
        before = _get(conn, team_id)
        conn.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
        conn.execute(delete(Team).where(Team.id == team_id))
        audit.record(conn, actor, "team.delete", "team", team_id, before=_brief(before))
