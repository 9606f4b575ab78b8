"""Users: create, list, update, passwords, and the lockout that slows password guessing.

Every function takes the acting Principal and checks its permission first, so the API, the CLI
and the web app share one check; every change is audited in its own transaction.

Lockout: from the 3rd failed login in a row, each failure makes the account wait before the
next try (1 s, 2 s, 4 s, ... up to 60 s); the 10th locks it for 15 minutes and writes an
`auth.lockout` audit entry. While waiting or locked, the password is not even checked. A
successful login, or an admin's `unlock_user`, resets the count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from engine.auth import audit
from engine.auth.errors import (
    AccountLockedError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PasswordPolicyError,
)
from engine.auth.passwords import check_policy, hash_password, verify_password
from engine.auth.principal import ROLES, SYSTEM, Principal
from engine.store.db import Database, orm
from engine.store.models import RefreshToken, Team, TeamMember, User

THROTTLE_AFTER = 3
LOCK_AFTER = 10
LOCK_MINUTES = 15
MAX_WAIT_S = 60

_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
USER_SORTS = {
    "email": User.email,
    "name": User.name,
    "role": User.role,
    "created_at": User.created_at,
    "last_login_at": User.last_login_at,
    "id": User.id,
}


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidInputError(f"{email!r} is not an email address", field="email")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(
            f"unknown role {role!r}; roles are {', '.join(ROLES)}", field="role"
        )
    return role


def user_dict(u: User, teams: Sequence[str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "teams": list(teams),
        "is_active": u.is_active,
        "mfa_enabled": u.mfa_enabled,
        "is_locked": u.locked_until is not None and u.locked_until > now,
        "locked_until": _iso(u.locked_until),
        "failed_logins": u.failed_logins,
        "created_at": _iso(u.created_at),
        "last_login_at": _iso(u.last_login_at),
        "erased_at": _iso(u.erased_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def teams_of(conn: Connection, user_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in user_ids}
    if user_ids:
        rows = conn.execute(
            select(TeamMember.user_id, Team.name)
            .join(Team, Team.id == TeamMember.team_id)
            .where(TeamMember.user_id.in_(list(user_ids)))
            .order_by(Team.name)
        )
        for user_id, name in rows:
            out[user_id].append(name)
    return out


def team_ids(conn: Connection, names: Sequence[str]) -> list[int]:
    """Ids of the named teams; an unknown name is a 422 naming it."""
    found = dict(conn.execute(select(Team.name, Team.id).where(Team.name.in_(list(names)))).all())
    missing = [n for n in names if n not in found]
    if missing:
        raise InvalidInputError(f"no team named {missing[0]!r}", field="teams")
    return [found[n] for n in names]


def load_user(conn: Connection, user_id: int) -> User:
    row = orm(conn).scalars(select(User).where(User.id == user_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no user with id {user_id}", field="id")
    return row


def find_user(conn: Connection, email: str) -> User | None:
    return orm(conn).scalars(select(User).where(User.email == email.strip().lower())).one_or_none()


# ---------------------------------------------------------------- managing users


def create_user(
    db: Database,
    *,
    email: str,
    role: str,
    password: str,
    name: str = "",
    teams: Sequence[str] = (),
    actor: Principal = SYSTEM,
) -> dict[str, Any]:
    actor.require("users.write")
    email = normalize_email(email)
    check_role(role)
    if len(name) > 256:
        raise InvalidInputError("the name may have at most 256 characters", field="name")
    check_policy(password, email=email, name=name)
    password_hash = hash_password(password)
    with db.connect() as conn:
        if find_user(conn, email) is not None:
            raise ConflictError(f"a user with email {email} already exists", field="email")
        ids = team_ids(conn, list(dict.fromkeys(teams)))
        user_id = conn.execute(
            insert(User)
            .values(
                email=email,
                name=name,
                role=role,
                password_hash=password_hash,
                created_at=datetime.now(UTC),
            )
            .returning(User.id)
        ).scalar_one()
        for team_id in ids:
            conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))
        after = {"email": email, "name": name, "role": role, "teams": list(dict.fromkeys(teams))}
        audit.record(conn, actor, "user.create", "user", user_id, after=after)
        return user_dict(load_user(conn, user_id), teams_of(conn, [user_id])[user_id])


@dataclass(frozen=True)
class UserQuery:
    """Filters of the user list; lists mean any of."""

    role: Sequence[str] = ()
    team: Sequence[str] = ()
    q: str | None = None
    active: bool | None = None
    sort: str = "email"
    descending: bool = False
    limit: int = 100
    offset: int = 0

    def validate(self) -> None:
        if self.sort not in USER_SORTS:
            raise InvalidInputError(
                f"cannot sort by {self.sort!r}; choose one of {', '.join(USER_SORTS)}", field="sort"
            )
        for role in self.role:
            if role not in ROLES:
                raise InvalidInputError(
                    f"unknown role {role!r}; roles are {', '.join(ROLES)}", field="role"
                )
        if not 1 <= self.limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000", field="limit")
        if self.offset < 0:
            raise InvalidInputError("offset must not be negative", field="offset")


def list_users(
    db: Database, actor: Principal, query: UserQuery | None = None
) -> list[dict[str, Any]]:
    actor.require("users.read")
    query = query or UserQuery()
    query.validate()
    stmt = select(User)
    if query.role:
        stmt = stmt.where(User.role.in_(list(query.role)))
    if query.team:
        members = (
            select(TeamMember.user_id)
            .join(Team, Team.id == TeamMember.team_id)
            .where(Team.name.in_(list(query.team)))
        )
        stmt = stmt.where(User.id.in_(members))
    if query.active is not None:
        stmt = stmt.where(User.is_active == query.active)
    if query.q:
        # Bound and escaped: the text is data, and % or _ in it match only themselves.
        text = query.q.lower()
        stmt = stmt.where(
            or_(
                func.lower(User.email).contains(text, autoescape=True),
                func.lower(User.name).contains(text, autoescape=True),
            )
        )
    column = USER_SORTS[query.sort]
    order = (column.desc(), User.id.desc()) if query.descending else (column.asc(), User.id.asc())
    with db.read() as conn:
        rows = (
            orm(conn).scalars(stmt.order_by(*order).limit(query.limit).offset(query.offset)).all()
        )
        teams = teams_of(conn, [u.id for u in rows])
    return [user_dict(u, teams[u.id]) for u in rows]


def get_user(db: Database, actor: Principal, user_id: int) -> dict[str, Any]:
    if actor.user_id != user_id:
        actor.require("users.read")
    with db.read() as conn:
        return user_dict(load_user(conn, user_id), teams_of(conn, [user_id])[user_id])


def update_user(
    db: Database,
    actor: Principal,
    user_id: int,
    *,
    name: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    teams: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Change name, role, active flag or teams. Deactivating ends the user's sessions. The last
    active admin can be neither demoted nor deactivated, so Klaxon always has one."""
    actor.require("users.write")
    if role is not None:
        check_role(role)
    if name is not None and len(name) > 256:
        raise InvalidInputError("the name may have at most 256 characters", field="name")
    with db.connect() as conn:
        user = load_user(conn, user_id)
        if user.erased_at is not None:
            raise ConflictError(f"user {user_id} was erased", field="id")
        old_teams = teams_of(conn, [user_id])[user_id]
        before = {
            "name": user.name,
            "role": user.role,
            "is_active": user.is_active,
            "teams": old_teams,
        }
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if role is not None:
            values["role"] = role
        if is_active is not None:
            values["is_active"] = is_active
        if (
            user.role == "admin"
            and user.is_active
            and (values.get("role", "admin") != "admin" or values.get("is_active") is False)
        ):
            keep_an_admin(conn, user_id)
        if values:
            conn.execute(update(User).where(User.id == user_id).values(**values))
        if teams is not None:
            ids = team_ids(conn, list(dict.fromkeys(teams)))
            conn.execute(delete(TeamMember).where(TeamMember.user_id == user_id))
            for team_id in ids:
                conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))
        if is_active is False:
            revoke_sessions(conn, user_id)
        after_user = load_user(conn, user_id)
        new_teams = teams_of(conn, [user_id])[user_id]
        after = {
            "name": after_user.name,
            "role": after_user.role,
            "is_active": after_user.is_active,
            "teams": new_teams,
        }
        if after != before:
            action = "user.role" if after["role"] != before["role"] else "user.update"
            audit.record(conn, actor, action, "user", user_id, before=before, after=after)
        return user_dict(after_user, new_teams)


def keep_an_admin(conn: Connection, user_id: int) -> None:
    others = conn.execute(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.is_active, User.id != user_id)
    ).scalar_one()
    if not others:
        raise ConflictError("this is the last active admin: make another admin first", field="role")


def set_password(
    db: Database,
    actor: Principal,
    user_id: int,
    new_password: str,
    *,
    current_password: str | None = None,
) -> None:
    """Users change their own password by giving the current one; admins set anyone's. Either
    way every session of the user ends."""
    own = actor.kind == "user" and actor.user_id == user_id
    if not own:
        actor.require("users.write")
    with db.read() as conn:
        user = load_user(conn, user_id)
    if own:
        ok, _ = verify_password(user.password_hash, current_password or "")
        if not ok:
            raise PasswordPolicyError("the current password is wrong", field="current_password")
    check_policy(new_password, email=user.email, name=user.name)
    password_hash = hash_password(new_password)
    with db.connect() as conn:
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(password_hash=password_hash, failed_logins=0, locked_until=None)
        )
        revoke_sessions(conn, user_id)
        audit.record(conn, actor, "user.password", "user", user_id)


def unlock_user(db: Database, actor: Principal, user_id: int) -> dict[str, Any]:
    actor.require("users.write")
    with db.connect() as conn:
        user = load_user(conn, user_id)
        before = {"failed_logins": user.failed_logins, "locked_until": _iso(user.locked_until)}
        conn.execute(
            update(User).where(User.id == user_id).values(failed_logins=0, locked_until=None)
        )
        audit.record(
            conn, actor, "user.unlock", "user", user_id, before=before, after={"failed_logins": 0}
        )
        return user_dict(load_user(conn, user_id), teams_of(conn, [user_id])[user_id])


def revoke_sessions(conn: Connection, user_id: int) -> int:
    """End every session of a user (their refresh-token families; access tokens die with them)."""
    stmt = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    return conn.execute(stmt.values(revoked_at=datetime.now(UTC))).rowcount


# ---------------------------------------------------------------- lockout


def check_not_locked(user: User, now: datetime) -> None:
    if user.locked_until is None or user.locked_until <= now:
        return
    wait = max(1, int((user.locked_until - now).total_seconds() + 0.999))
    if user.failed_logins >= LOCK_AFTER:
        raise AccountLockedError(
            f"the account is locked after {user.failed_logins} failed logins: "
            f"try again in {wait} s, or ask an admin to unlock it",
            retry_after=wait,
        )
    raise AccountLockedError(
        f"too many failed logins: wait {wait} s before trying again", retry_after=wait
    )


def note_failure(conn: Connection, user_id: int, actor: Principal, reason: str) -> int:
    """Count a failed login (atomically), make the account wait or lock it; returns the count."""
    now = datetime.now(UTC)
    count = conn.execute(
        update(User)
        .where(User.id == user_id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    ).scalar_one()
    locked_until = None
    if count >= LOCK_AFTER:
        locked_until = now + timedelta(minutes=LOCK_MINUTES)
    elif count >= THROTTLE_AFTER:
        locked_until = now + timedelta(seconds=min(MAX_WAIT_S, 2 ** (count - THROTTLE_AFTER)))
    if locked_until is not None:
        conn.execute(update(User).where(User.id == user_id).values(locked_until=locked_until))
    audit.record(
        conn,
        actor,
        "auth.login.failed",
        "user",
        user_id,
        after={"reason": reason, "failed_logins": count},
    )
    if count >= LOCK_AFTER:
        audit.record(
            conn,
            actor,
            "auth.lockout",
            "user",
            user_id,
            after={"failed_logins": count, "minutes": LOCK_MINUTES},
        )
    return int(count)


def note_success(conn: Connection, user_id: int, password_hash: str | None = None) -> None:
    values: dict[str, Any] = {
        "failed_logins": 0,
        "locked_until": None,
        "last_login_at": datetime.now(UTC),
    }
    if password_hash:
        values["password_hash"] = password_hash
    conn.execute(update(User).where(User.id == user_id).values(**values))
