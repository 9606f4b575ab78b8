"""Who is calling: API keys (hashed, scoped, optionally HMAC-signed, rate limited)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Request
from sqlalchemy import select, update

from engine.api.errors import ApiError
from engine.auth.principal import Principal
from engine.crypto import decrypt, hash_token
from engine.store.db import Database, orm
from engine.store.models import ApiKey

KEY_PREFIX = "klx_"

# Every numeric id in a path: a positive 64-bit integer (larger ones can match nothing).
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
_CACHE_SECONDS = 30.0


@dataclass
class _Key:
    id: int
    name: str
    scopes: tuple[str, ...]
    hmac_secret: str | None
    rate_limit: int
    loaded: float


class _Bucket:
    """A token bucket: `rate` requests a minute, bursts up to a minute's worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 if allowed, else seconds until the next token."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate / 60)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / self.rate


class Authenticator:
    """Resolves the Authorization header to a Principal; other schemes can be added in front."""

    def __init__(self, db: Database, default_rate: int) -> None:
        self.db = db
        self.default_rate = default_rate
        self._keys: dict[str, _Key | None] = {}
        self._buckets: dict[int, _Bucket] = {}
        self._touched: dict[int, float] = {}
        # Extra resolvers (session tokens for users): (token) -> Principal | None
        self.resolvers: list[Callable[[str, Request], Awaitable[Principal | None]]] = []

    def forget(self) -> None:
        """Drop cached keys (after one is created or revoked)."""
        self._keys.clear()

    def _cached(self, token: str) -> _Key | None:
        cached = self._keys.get(hash_token(token))
        if cached is not None and time.monotonic() - cached.loaded < _CACHE_SECONDS:
            return cached
        return None

    def _lookup(self, token: str) -> _Key | None:
        digest = hash_token(token)
        with self.db.read() as conn:
            row = (
                orm(conn)
                .scalars(
                    select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
                )
                .one_or_none()
            )
        if row is None:
            self._keys.pop(digest, None)
            return None
        key = _Key(
            row.id,
            row.name,
            tuple(row.scopes or ()),
            decrypt(row.hmac_secret_encrypted) if row.hmac_secret_encrypted else None,
            row.rate_limit_per_min or self.default_rate,
            time.monotonic(),
        )
        self._keys[digest] = key
        return key

    def _touch(self, key: _Key) -> None:
        now = time.monotonic()
        if now - self._touched.get(key.id, 0) < 60:
            return
        self._touched[key.id] = now
        with self.db.connect() as conn:
            conn.execute(
                update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=datetime.now(UTC))
            )

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "authentication required: send Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )
        token = token.strip()
        ip = request.client.host if request.client else None
        agent = request.headers.get("user-agent")
        if not token.startswith(KEY_PREFIX):
            for resolve in self.resolvers:
                principal = await resolve(token, request)
                if principal is not None:
                    return principal
            raise ApiError(
                401,
                "the token is not valid (expired, revoked or unknown)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # A known key is answered from memory; only a miss goes to the store (off the loop).
        key = self._cached(token) or await asyncio.to_thread(self._lookup, token)
        if key is None:
            raise ApiError(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        bucket = self._buckets.setdefault(key.id, _Bucket(key.rate_limit))
        wait = bucket.take()
        if wait > 0:
            retry = max(1, int(wait + 0.999))
            raise ApiError(
                429,
                f"API key '{key.name}' is over its rate limit of {key.rate_limit} requests a minute",
                headers={"Retry-After": str(retry)},
                retry_after=retry,
            )
        if key.hmac_secret is not None:
            await _check_signature(request, key)
        if time.monotonic() - self._touched.get(key.id, 0) >= 60:
            await asyncio.to_thread(self._touch, key)
        return Principal(f"key:{key.name}", kind="key", scopes=key.scopes, ip=ip, user_agent=agent)


async def _check_signature(request: Request, key: _Key) -> None:
    """X-Klaxon-Signature: sha256=HEX of the raw body, keyed with the key's HMAC secret."""
    given = request.headers.get("x-klaxon-signature", "")
    if not given.startswith("sha256="):
        raise ApiError(
            401,
            "this key signs its requests: X-Klaxon-Signature: sha256=HEX is missing",
            field="X-Klaxon-Signature",
        )
    body = await request.body()
    assert key.hmac_secret is not None
    want = hmac.new(key.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, given.removeprefix("sha256=").strip().lower()):
        raise ApiError(
            401, "the request signature does not match its body", field="X-Klaxon-Signature"
        )


def permission(name: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, then require one permission."""

    async def dependency(request: Request) -> Principal:
        auth: Authenticator = request.app.state.auth
        principal = await auth.authenticate(request)
        principal.require(name)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"requires_{name.replace('.', '_')}"
    return dependency
