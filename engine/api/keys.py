"""API keys for integrations and scripts: list, create (the token is shown once), revoke."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from engine.api.deps import Authenticator, Id, permission
from engine.api.errors import ApiError
from engine.auth import keys
from engine.auth.principal import SCOPES, Principal
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/keys", tags=["api keys"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="what uses it: prometheus-prod")
    scopes: list[str] = Field(
        default_factory=lambda: ["ingest"], max_length=10, description=", ".join(SCOPES)
    )
    hmac: bool = Field(default=False, description="also require an HMAC-SHA256 body signature")
    rate_limit: int | None = Field(default=None, description="requests a minute")


@router.get("", summary="API keys (never the keys themselves)")
def list_keys(
    request: Request, actor: Annotated[Principal, Depends(permission("integrations.read"))]
) -> list[dict[str, Any]]:
    return keys.list_keys(_db(request), actor)


@router.post("", status_code=201, summary="Create an API key; its token is in this answer only")
def create_key(
    body: KeyCreate,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    made = keys.create_key(
        _db(request),
        name=body.name,
        scopes=body.scopes,
        hmac=body.hmac,
        rate_limit=body.rate_limit,
        actor=actor,
    )
    return {"id": made.id, "token": made.token, "hmac_secret": made.hmac_secret}


@router.delete("/{key_id}", summary="Revoke an API key: it stops working at once")
async def revoke_key(
    key_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    done = await asyncio.to_thread(keys.revoke_key, _db(request), key_id, actor)
    if not done:
        raise ApiError(404, f"no active API key with id {key_id}", field="key_id")
    auth: Authenticator = request.app.state.auth
    auth.forget()  # this process stops accepting it now, not when its cache entry ages out
    return {"ok": True}
