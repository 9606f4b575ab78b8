"""Incidents: alerts a `correlate` block grouped."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from engine.api.deps import Id, permission
from engine.auth.principal import Principal
from engine.store.db import Database
from engine.store.incidents import get_incident, list_incidents

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


@router.get("", summary="Incidents, newest first")
def list_(
    request: Request,
    actor: Annotated[Principal, Depends(permission("incidents.read"))],
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    db: Database = request.app.state.db
    with db.read() as conn:
        return list_incidents(conn, actor, status=status, limit=limit)


@router.get("/{incident_id}", summary="One incident and its alerts")
def get(
    incident_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("incidents.read"))],
) -> dict[str, Any]:
    db: Database = request.app.state.db
    with db.read() as conn:
        return get_incident(conn, actor, incident_id)
