"""API keys: created once (the token is shown once), kept hashed, scoped, revocable."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from engine.auth import audit
from engine.auth.principal import SYSTEM, Principal
from engine.crypto import encrypt, hash_token, new_token
from engine.store.db import Database, orm
from engine.store.models import ApiKey


@dataclass(frozen=True)
class CreatedKey:
    id: int
    token: str
    hmac_secret: str | None


def create_key(
    db: Database,
    *,
    name: str,
    scopes: list[str],
    hmac: bool = False,
    rate_limit: int | None = None,
    actor: Principal = SYSTEM,
) -> CreatedKey:
    actor.require("integrations.write")
    token = new_token("klx")
    secret = secrets.token_urlsafe(32) if hmac else None
    with db.connect() as conn:
        key_id = conn.execute(
            insert(ApiKey)
            .values(
                name=name,
                prefix=token[:12],
                key_hash=hash_token(token),
                scopes=scopes,
                hmac_secret_encrypted=encrypt(secret) if secret else None,
                rate_limit_per_min=rate_limit,
                created_by=actor.name,
                created_at=datetime.now(UTC),
            )
            .returning(ApiKey.id)
        ).scalar_one()
        audit.record(
            conn,
            actor,
            "apikey.create",
            "api_key",
            key_id,
            after={"name": name, "scopes": scopes, "hmac": hmac},
        )
    return CreatedKey(key_id, token, secret)


def list_keys(db: Database, actor: Principal = SYSTEM) -> list[dict[str, Any]]:
    actor.require("integrations.read")
    with db.read() as conn:
        rows = orm(conn).scalars(select(ApiKey).order_by(ApiKey.id)).all()
    return [
        {
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "scopes": list(k.scopes or []),
            "hmac": k.hmac_secret_encrypted is not None,
            "rate_limit_per_min": k.rate_limit_per_min,
            "created_by": k.created_by,
            "created_at": k.created_at.isoformat(),
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in rows
    ]


def revoke_key(db: Database, key_id: int, actor: Principal = SYSTEM) -> bool:
    actor.require("integrations.write")
    with db.connect() as conn:
        done = conn.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
        if done:
            audit.record(conn, actor, "apikey.revoke", "api_key", key_id)
    return bool(done)
