"""Users: list, create, change, unlock, reset MFA, export and erase (personal data)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from engine.api.deps import permission
from engine.auth import mfa, privacy, users
from engine.auth.principal import Principal
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/users", tags=["users"])
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


class UserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=256)
    role: Literal["admin", "manager", "operator", "viewer"]
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field(default="", max_length=256)
    teams: list[str] = Field(default_factory=list, max_length=100)


class UserUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=256)
    role: Literal["admin", "manager", "operator", "viewer"] | None = None
    is_active: bool | None = None
    teams: list[str] | None = Field(default=None, max_length=100)


class PasswordSet(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


@router.get("", summary="Users, filtered and sorted")
def list_users(
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.read"))],
    role: Annotated[list[str] | None, Query(description="admin, manager, operator, viewer")] = None,
    team: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in email or name")] = None,
    active: Annotated[bool | None, Query()] = None,
    sort: Annotated[str, Query(description=", ".join(users.USER_SORTS))] = "email",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    query = users.UserQuery(
        role=_split(role),
        team=_split(team),
        q=q,
        active=active,
        sort=sort,
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )
    return users.list_users(_db(request), actor, query)


@router.post("", status_code=201, summary="Create a user")
def create_user(
    body: UserCreate,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    return users.create_user(
        _db(request),
        email=body.email,
        role=body.role,
        password=body.password,
        name=body.name,
        teams=body.teams,
        actor=actor,
    )


@router.get("/{user_id}", summary="One user")
def get_user(
    user_id: UserId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.read"))],
) -> dict[str, Any]:
    return users.get_user(_db(request), actor, user_id)


@router.patch("/{user_id}", summary="Change a user's name, role, active flag or teams")
def update_user(
    user_id: UserId,
    body: UserUpdate,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    return users.update_user(
        _db(request),
        actor,
        user_id,
        name=body.name,
        role=body.role,
        is_active=body.is_active,
        teams=body.teams,
    )


@router.post("/{user_id}/password", summary="Set a user's password (their sessions end)")
def set_password(
    user_id: UserId,
    body: PasswordSet,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    users.set_password(_db(request), actor, user_id, body.password)
    return {"ok": True}


@router.post("/{user_id}/unlock", summary="Clear failed logins and the lockout")
def unlock(
    user_id: UserId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    return users.unlock_user(_db(request), actor, user_id)


@router.post("/{user_id}/mfa/reset", summary="Turn a user's MFA off (lost phone); they enrol again")
def reset_mfa(
    user_id: UserId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    mfa.disable(_db(request), actor, user_id)
    return {"ok": True}


@router.get("/{user_id}/export", summary="Everything Klaxon holds about a user (JSON)")
def export_user(
    user_id: UserId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    return privacy.export_user(_db(request), actor, user_id)


@router.post(
    "/{user_id}/erase", summary="Erase a user: pseudonymize them everywhere (cannot be undone)"
)
def erase_user(
    user_id: UserId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("users.write"))],
) -> dict[str, Any]:
    return privacy.erase_user(_db(request), actor, user_id)
