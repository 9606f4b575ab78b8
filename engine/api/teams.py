"""Teams: list, create, rename, require MFA, members, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from engine.api.deps import permission
from engine.auth import teams
from engine.auth.principal import Principal
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/teams", tags=["teams"])
TeamId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


class TeamCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    require_mfa: bool = False
    members: list[str] = Field(default_factory=list, max_length=1000, description="users' emails")


class TeamUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    require_mfa: bool | None = None
    members: list[str] | None = Field(
        default=None, max_length=1000, description="the new member list (emails)"
    )


@router.get("", summary="Teams and their members")
def list_teams(
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.read"))],
    q: Annotated[str | None, Query(max_length=200, description="text in the name")] = None,
    sort: Annotated[str, Query(description=", ".join(teams.TEAM_SORTS))] = "name",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    query = teams.TeamQuery(q=q, sort=sort, descending=order == "desc", limit=limit, offset=offset)
    return teams.list_teams(_db(request), actor, query)


@router.post("", status_code=201, summary="Create a team")
def create_team(
    body: TeamCreate,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    return teams.create_team(
        _db(request), actor, name=body.name, require_mfa=body.require_mfa, members=body.members
    )


@router.get("/{team_id}", summary="One team")
def get_team(
    team_id: TeamId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.read"))],
) -> dict[str, Any]:
    return teams.get_team(_db(request), actor, team_id)


@router.patch("/{team_id}", summary="Rename, require MFA, or replace the members")
def update_team(
    team_id: TeamId,
    body: TeamUpdate,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    return teams.update_team(
        _db(request),
        actor,
        team_id,
        name=body.name,
        require_mfa=body.require_mfa,
        members=body.members,
    )


@router.delete("/{team_id}", summary="Delete a team")
def delete_team(
    team_id: TeamId,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    teams.delete_team(_db(request), actor, team_id)
    return {"ok": True}
