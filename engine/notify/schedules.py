"""On-call schedules in the store: create, change, remove, and ask who is on call now and next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.notify.channels import check_name
from engine.notify.clock import iso, wall_clock
from engine.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from engine.notify.oncall import Rotation, check_rotation, now_and_next, rotation_settings
from engine.store.db import orm
from engine.store.models import Schedule, User


def schedule_dict(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "tz": s.tz,
        "rotation": s.rotation,
        "overrides": s.overrides,
        "created_at": iso(s.created_at),
    }


def rotation_of(s: Schedule) -> Rotation:
    return check_rotation(s.tz, s.rotation, s.overrides)


def _check_users(conn: Connection, r: Rotation) -> None:
    """Every user named must exist; the error names where (rotation.users[2])."""
    named = [(f"rotation.users[{i}]", u) for i, u in enumerate(r.users)]
    named += [(f"overrides[{i}].user", o.user) for i, o in enumerate(r.overrides)]
    known = set(orm(conn).scalars(select(User.email).where(User.email.in_([u for _, u in named]))))
    for field, user in named:
        if user not in known:
            raise NotifyConfigError(f"{field}: no user with email '{user}'", field=field)


def _load(conn: Connection, name: str) -> Schedule:
    row = orm(conn).scalars(select(Schedule).where(Schedule.name == name)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no schedule named '{name}'", field="name")
    return row


def list_schedules(conn: Connection, actor: Principal) -> list[dict[str, Any]]:
    actor.require("teams.read")
    return [schedule_dict(s) for s in orm(conn).scalars(select(Schedule).order_by(Schedule.name))]


def get_schedule(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("teams.read")
    return schedule_dict(_load(conn, name))


def create_schedule(
    conn: Connection,
    actor: Principal,
    name: str,
    *,
    tz: str = "UTC",
    rotation: dict[str, Any],
    overrides: list[Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    actor.require("teams.write")
    name = check_name(name)
    checked = check_rotation(tz, rotation, overrides)
    _check_users(conn, checked)
    if orm(conn).scalars(select(Schedule.id).where(Schedule.name == name)).first() is not None:
        raise NotifyConflictError(f"name: a schedule named '{name}' already exists", field="name")
    stored, stored_overrides = rotation_settings(checked)
    conn.execute(
        insert(Schedule).values(
            name=name,
            tz=checked.tz,
            rotation=stored,
            overrides=stored_overrides,
            created_at=now or wall_clock(),
        )
    )
    created = schedule_dict(_load(conn, name))
    audit.record(conn, actor, "schedule.create", "schedule", name, after=created)
    return created


def update_schedule(
    conn: Connection,
    actor: Principal,
    name: str,
    *,
    tz: str | None = None,
    rotation: dict[str, Any] | None = None,
    overrides: list[Any] | None = None,
) -> dict[str, Any]:
    """Replace the given parts (tz, rotation, overrides); the rest stays."""
    actor.require("teams.write")
    row = _load(conn, name)
    before = schedule_dict(row)
    checked = check_rotation(
        tz if tz is not None else row.tz,
        rotation if rotation is not None else row.rotation,
        overrides if overrides is not None else row.overrides,
    )
    _check_users(conn, checked)
    stored, stored_overrides = rotation_settings(checked)
    conn.execute(
        update(Schedule)
        .where(Schedule.id == row.id)
        .values(tz=checked.tz, rotation=stored, overrides=stored_overrides)
    )
    after = schedule_dict(_load(conn, name))
    audit.record(conn, actor, "schedule.update", "schedule", name, before=before, after=after)
    return after


def delete_schedule(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("teams.write")
    row = _load(conn, name)
    before = schedule_dict(row)
    conn.execute(delete(Schedule).where(Schedule.id == row.id))
    audit.record(conn, actor, "schedule.delete", "schedule", name, before=before)
    return before


def who_is_on_call(
    conn: Connection, actor: Principal, at: datetime, name: str | None = None
) -> list[dict[str, Any]]:
    """For one schedule or all: who is on call at `at` and who comes next, with their shifts."""
    actor.require("teams.read")
    rows = (
        [_load(conn, name)]
        if name
        else list(orm(conn).scalars(select(Schedule).order_by(Schedule.name)))
    )
    return [
        {"schedule": s.name, "tz": s.tz, "at": iso(at), **now_and_next(rotation_of(s), at)}
        for s in rows
    ]
