"""Alerts: the list with filters, sorting and cursors; one alert; actions; history; bulk."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from engine.api.deps import Id, permission
from engine.auth.principal import Principal
from engine.store.alerts import (
    RESOLUTIONS,
    AlertQuery,
    act,
    act_many,
    get_alert,
    history,
    list_alerts,
    notifications_of,
)
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _split(values: list[str] | None) -> list[str]:
    """`?status=active&status=acknowledged` and `?status=active,acknowledged` both work."""
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


class AlertPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None = Field(description="cursor of the next page, or null at the end")


@router.get("", response_model=AlertPage, summary="List alerts")
def list_(
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
    status: Annotated[
        list[str] | None,
        Query(description="active, acknowledged, investigating, resolved, suppressed, or open"),
    ] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    service: Annotated[list[str] | None, Query()] = None,
    environment: Annotated[list[str] | None, Query()] = None,
    team: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[str] | None, Query()] = None,
    rule: Annotated[list[str] | None, Query()] = None,
    assignee: Annotated[list[str] | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="text search in title, description, service, host, rule, key",
        ),
    ] = None,
    since: Annotated[datetime | None, Query(description="created at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="created before (RFC 3339)")] = None,
    incident: Annotated[int | None, Query()] = None,
    sort: Annotated[
        str,
        Query(
            description="created_at, last_seen, resolved_at, occurrences, severity, status, title, id"
        ),
    ] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AlertPage:
    query = AlertQuery(
        status=_split(status),
        severity=_split(severity),
        service=_split(service),
        environment=_split(environment),
        team=_split(team),
        source=_split(source),
        rule=_split(rule),
        assignee=_split(assignee),
        q=q,
        since=since,
        until=until,
        incident_id=incident,
        sort=sort,
        descending=order == "desc",
    )
    with _db(request).read() as conn:
        items, nxt = list_alerts(conn, actor, query, limit=limit, cursor=cursor)
    return AlertPage(items=items, next=nxt)


@router.get("/{alert_id}", summary="One alert")
def get(
    alert_id: Id, request: Request, actor: Annotated[Principal, Depends(permission("alerts.read"))]
) -> dict[str, Any]:
    with _db(request).read() as conn:
        return get_alert(conn, actor, alert_id)


@router.get("/{alert_id}/history", summary="Every change of an alert, and its notes")
def get_history(
    alert_id: Id, request: Request, actor: Annotated[Principal, Depends(permission("alerts.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return history(conn, actor, alert_id)


@router.get("/{alert_id}/notifications", summary="Deliveries made for an alert")
def get_notifications(
    alert_id: Id, request: Request, actor: Annotated[Principal, Depends(permission("alerts.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return notifications_of(conn, actor, alert_id)


class ActionBody(BaseModel):
    note: str | None = Field(default=None, max_length=10_000)


class ResolveBody(ActionBody):
    reason: str = Field(default="fixed", description=f"one of {', '.join(RESOLUTIONS)}")


class AssignBody(ActionBody):
    assignee: str = Field(min_length=1, max_length=256)


class NoteBody(BaseModel):
    note: str = Field(min_length=1, max_length=10_000)


def _act(
    request: Request, actor: Principal, alert_id: Id, action: str, **kwargs: Any
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        return act(conn, actor, alert_id, action, **kwargs)


@router.post("/{alert_id}/acknowledge", summary="Acknowledge: someone is on it")
def acknowledge(
    alert_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
    body: ActionBody | None = None,
) -> dict[str, Any]:
    return _act(request, actor, alert_id, "acknowledge", note=body.note if body else None)


@router.post("/{alert_id}/investigate", summary="Mark as under investigation")
def investigate(
    alert_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
    body: ActionBody | None = None,
) -> dict[str, Any]:
    return _act(request, actor, alert_id, "investigate", note=body.note if body else None)


@router.post("/{alert_id}/resolve", summary="Resolve, with a reason such as false_positive")
def resolve(
    alert_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
    body: ResolveBody | None = None,
) -> dict[str, Any]:
    body = body or ResolveBody()
    return _act(request, actor, alert_id, "resolve", note=body.note, reason=body.reason)


@router.post("/{alert_id}/assign", summary="Assign to someone")
def assign(
    alert_id: Id,
    body: AssignBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
) -> dict[str, Any]:
    return _act(request, actor, alert_id, "assign", note=body.note, assignee=body.assignee)


@router.post("/{alert_id}/escalate", summary="Raise the escalation level now")
def escalate(
    alert_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
    body: ActionBody | None = None,
) -> dict[str, Any]:
    return _act(request, actor, alert_id, "escalate", note=body.note if body else None)


@router.post("/{alert_id}/notes", summary="Add a note")
def add_note(
    alert_id: Id,
    body: NoteBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
) -> dict[str, Any]:
    return _act(request, actor, alert_id, "note", note=body.note)


class BulkBody(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=1000)
    action: Literal["acknowledge", "investigate", "resolve", "assign", "escalate", "note"]
    note: str | None = Field(default=None, max_length=10_000)
    reason: str | None = None
    assignee: str | None = None


@router.post("/bulk", summary="The same action on many alerts; each reports its own result")
def bulk(
    body: BulkBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        results = act_many(
            conn,
            actor,
            body.ids,
            body.action,
            note=body.note,
            reason=body.reason,
            assignee=body.assignee,
        )
    return {"ok": all(r["ok"] for r in results), "results": results}
