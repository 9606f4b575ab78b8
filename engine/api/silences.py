"""Silences made through the API: a matcher over alerts and a time window (DSL.md §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from engine.api.deps import Id, permission
from engine.auth.principal import Principal
from engine.store.db import Database
from engine.store.silences import SilenceSpec, create_silence, expire_silence, list_silences

router = APIRouter(prefix="/api/v1/silences", tags=["silences"])


class SilenceBody(BaseModel):
    matcher: str = Field(
        min_length=1,
        max_length=10_000,
        description='a rule-language condition over alerts, e.g. service == "db"',
    )
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    during: str | None = Field(
        default=None,
        max_length=128,
        description='recurring, e.g. mon-fri 22:00-06:00 in "Europe/Berlin"',
    )
    comment: str = Field(default="", max_length=1000)


@router.get("", summary="Silences, newest first")
def list_(
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
    active: Annotated[bool | None, Query()] = None,
) -> list[dict[str, Any]]:
    db: Database = request.app.state.db
    with db.read() as conn:
        return list_silences(conn, actor, active=active)


@router.post("", status_code=201, summary="Create a silence")
def create(
    body: SilenceBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("silences.write"))],
) -> dict[str, Any]:
    db: Database = request.app.state.db
    with db.connect() as conn:
        return create_silence(conn, actor, SilenceSpec(**body.model_dump()))


@router.post("/{silence_id}/expire", summary="End a silence now")
def expire(
    silence_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("silences.write"))],
) -> dict[str, Any]:
    db: Database = request.app.state.db
    with db.connect() as conn:
        return expire_silence(conn, actor, silence_id)
