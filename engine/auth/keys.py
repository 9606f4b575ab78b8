"""API keys: created once (the token is shown once), kept hashed, scoped, revocable.

A key never holds more than the person who made it: every permission of its scopes must be
one the creator has (a manager cannot mint an `admin` key). Service functions check this,
so the API, the CLI and the web app refuse alike.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from engine.auth import audit
from engine.auth.errors import InvalidInputError
from engine.auth.principal import SCOPE_PERMISSIONS, SCOPES, SYSTEM, PermissionDenied, Principal
from engine.crypto import encrypt, hash_token, new_token
from engine.store.db import Database, orm
from engine.store.models import ApiKey

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
MAX_RATE_LIMIT = 1_000_000


def check_key_request(
    actor: Principal, name: str, scopes: Sequence[str], rate_limit: int | None
) -> tuple[str, list[str]]:
    """The cleaned name and scopes, or InvalidInputError naming the field, or PermissionDenied
    naming a permission a scope would grant that the actor does not have."""
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a key name: 1 to 128 letters, digits and . _ : @ -, "
            "starting with a letter or digit",
            field="name",
        )
    wanted = list(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not wanted:
        raise InvalidInputError(f"give at least one scope of {', '.join(SCOPES)}", field="scopes")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise InvalidInputError(
            f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}", field="scopes"
        )
    if rate_limit is not None and not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise InvalidInputError(
            f"rate_limit must be between 1 and {MAX_RATE_LIMIT} requests a minute",
            field="rate_limit",
        )
    for scope in wanted:
        missing = sorted(SCOPE_PERMISSIONS[scope] - actor.permissions)
        if missing:
            raise PermissionDenied(actor, missing[0])
    return name, wanted


@dataclass(frozen=True)
class CreatedKey:
    id: int
    token: str
    hmac_secret: str | None


def create_key(
    db: Database,
    *,
    name: str,
    scopes: Sequence[str],
    hmac: bool = False,
    rate_limit: int | None = None,
    actor: Principal = SYSTEM,
) -> CreatedKey:
    """Make a key; its token (and HMAC secret) are in the result and nowhere else."""
    actor.require("integrations.write")
    name, scopes = check_key_request(actor, name, scopes, rate_limit)
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
