"""The audit log: search, export (CSV, JSON) and chain verification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from engine.api.deps import permission
from engine.auth import audit
from engine.auth.audit_search import AUDIT_SORTS, AuditQuery, export, search_audit
from engine.auth.principal import Principal
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _query(
    actor: Annotated[
        list[str] | None, Query(description="who acted (email, key:NAME, klaxon, anonymous)")
    ] = None,
    action: Annotated[
        list[str] | None, Query(description="e.g. alert.acknowledge, or a prefix: auth.*")
    ] = None,
    resource: Annotated[
        list[str] | None, Query(description="alert, user, team, rules, silence, api_key, ...")
    ] = None,
    resource_id: Annotated[str | None, Query(max_length=128)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="text in actor, action, resource id, before/after"),
    ] = None,
    since: Annotated[datetime | None, Query(description="at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="before (RFC 3339)")] = None,
    sort: Annotated[str, Query(description=", ".join(AUDIT_SORTS))] = "id",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditQuery:
    return AuditQuery(
        actor=_split(actor),
        action=_split(action),
        resource=_split(resource),
        resource_id=resource_id,
        ip=ip,
        q=q,
        since=since,
        until=until,
        sort=sort,
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )


@router.get("", summary="Search the audit log")
def search(
    request: Request,
    actor: Annotated[Principal, Depends(permission("audit.read"))],
    query: Annotated[AuditQuery, Depends(_query)],
) -> list[dict[str, Any]]:
    return search_audit(_db(request), actor, query)


@router.get(
    "/export", summary="Export the matching entries (all of them, in id order) as CSV or JSON"
)
def export_log(
    request: Request,
    actor: Annotated[Principal, Depends(permission("audit.read"))],
    query: Annotated[AuditQuery, Depends(_query)],
    format: Annotated[Literal["csv", "json"], Query()] = "json",
) -> StreamingResponse:
    chunks = export(_db(request), actor, format, query)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    headers = {"Content-Disposition": f'attachment; filename="klaxon-audit-{stamp}.{format}"'}
    return StreamingResponse(chunks, media_type=media, headers=headers)


@router.get("/verify", summary="Check the hash chain; names the first entry that does not hold")
def verify(
    request: Request, actor: Annotated[Principal, Depends(permission("audit.read"))]
) -> dict[str, Any]:
    return audit.verify(_db(request)).to_dict()
