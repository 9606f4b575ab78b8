"""The rules file: read, replace (refused with every `check` error if it does not compile),
validate without saving, versions and diffs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from dsl import check_rules
from engine.api.deps import permission
from engine.api.errors import ApiError
from engine.auth.principal import Principal
from engine.store import rules as store
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


class RulesBody(BaseModel):
    text: str = Field(max_length=5_000_000)
    comment: str = Field(default="", max_length=1000)


@router.get("", summary="The current rules file and its version")
def current(
    request: Request, actor: Annotated[Principal, Depends(permission("rules.read"))]
) -> dict[str, Any]:
    with _db(request).read() as conn:
        latest = store.current(conn)
    if latest is None:
        raise ApiError(404, "no rules yet: the worker loads the default rules when it starts")
    return latest.to_dict()


@router.put("", summary="Replace the rules file (refused with 422 if it does not compile)")
def replace(
    body: RulesBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("rules.write"))],
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        saved, changed = store.update_rules(conn, actor, body.text, body.comment)
    return {"ok": True, **saved.to_dict(), "changed": changed}


@router.post("/validate", summary="Check rules text without saving it")
def validate(
    body: RulesBody, actor: Annotated[Principal, Depends(permission("rules.read"))]
) -> dict[str, Any]:
    errors = check_rules(body.text, "rules.klx")
    return {"ok": not errors, "errors": [e.to_dict() for e in errors]}


@router.get("/versions", summary="Every saved version, newest first")
def versions(
    request: Request,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return [
            {k: v for k, v in r.to_dict().items() if k != "text"}
            for r in store.versions(conn, limit)
        ]


@router.get("/versions/{version}", summary="One saved version")
def version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
) -> dict[str, Any]:
    with _db(request).read() as conn:
        found = store.get(conn, version)
    if found is None:
        raise ApiError(404, f"no rules version {version}", field="version")
    return found.to_dict()


@router.get("/diff", summary="Unified diff between two versions")
def diff(
    request: Request,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
    base: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
    to: Annotated[int, Query(ge=1, le=2**31 - 1)],
) -> dict[str, Any]:
    with _db(request).read() as conn:
        a, b = store.get(conn, base), store.get(conn, to)
    for n, found, field in ((base, a, "from"), (to, b, "to")):
        if found is None:
            raise ApiError(404, f"no rules version {n}", field=field)
    assert a is not None
    assert b is not None
    return {"from": base, "to": to, "diff": store.diff(a.text, b.text, f"v{base}", f"v{to}")}
