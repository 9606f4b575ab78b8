"""Sign-in for people: login, refresh, logout, who am I, passwords and MFA; and `install`,
which wires user access tokens into the Authenticator and audits every refusal.

Every 401 and 403 the API gives is counted in an `access.denied` audit entry (who, if known,
the method, path, route, permission, reason and `count`). A flood of refusals does not flood
the log: per (client address, actor, method, route template) at most one entry a minute is
written, and the next one carries the `count` of the refusals folded into it (RefusalFolder;
the count is per API process). Failed logins are audited by the session service as
`auth.login.failed` (and `auth.lockout`) instead.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from engine.api.deps import permission
from engine.api.errors import ApiError, error_body
from engine.auth import audit, mfa, privacy, sessions, users
from engine.auth.errors import (
    AccountLockedError,
    AuthError,
    LoginError,
    MfaInvalidError,
    MfaRequiredError,
    TokenError,
)
from engine.auth.principal import PermissionDenied, Principal
from engine.store.db import Database

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
_Handler = Callable[[Request, Exception], Awaitable[Response]]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _client(request: Request) -> tuple[str | None, str | None]:
    return (request.client.host if request.client else None), request.headers.get("user-agent")


async def signed_in(request: Request) -> Principal:
    """A FastAPI dependency: any authenticated caller, no permission needed (e.g. /me)."""
    principal: Principal = await request.app.state.auth.authenticate(request)
    request.state.principal = principal
    return principal


def _user(actor: Principal) -> int:
    if actor.kind != "user" or actor.user_id is None:
        raise ApiError(403, "this is for signed-in users, not API keys", field="authorization")
    return actor.user_id


# ---------------------------------------------------------------- sessions


LOGINS_PER_MINUTE = 60


class LoginThrottle:
    """Login attempts per client address: LOGINS_PER_MINUTE a minute, bursts of as many.

    The per-account lockout (engine/auth/users.py) stops guessing one password; this stops
    one address from trying a few passwords on every account. In-process: each API replica
    counts its own."""

    def __init__(self, rate: int = LOGINS_PER_MINUTE) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, stamp)

    def take(self, address: str) -> int:
        """0 if the attempt may go ahead, else whole seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 100_000:  # forget idle addresses, bounded memory
                self._buckets = {a: b for a, b in self._buckets.items() if now - b[1] < 60}
            tokens, stamp = self._buckets.get(address, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - stamp) * self.rate / 60)
            if tokens >= 1:
                self._buckets[address] = (tokens - 1, now)
                return 0
            self._buckets[address] = (tokens, now)
            return max(1, math.ceil((1 - tokens) * 60 / self.rate))


def _login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle  # made by install()
    return throttle


class LoginBody(BaseModel):
    email: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(
        default=None, max_length=64, description="TOTP or backup code, when the account has MFA"
    )


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutBody(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds the access token lives")
    mfa_setup_required: bool = Field(description="the user must enrol in MFA before anything else")


@router.post(
    "/login", response_model=Tokens, summary="Log in with email, password and (with MFA) a code"
)
def login(body: LoginBody, request: Request) -> dict[str, Any]:
    ip, agent = _client(request)
    wait = _login_throttle(request).take(ip or "")
    if wait:
        raise ApiError(
            429,
            f"too many login attempts from this address: wait {wait} s",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    result = sessions.login(
        _db(request), body.email, body.password, body.totp, ip=ip, user_agent=agent
    )
    return result.to_dict()


@router.post(
    "/refresh",
    response_model=Tokens,
    summary="New tokens for a refresh token (which stops working)",
)
def refresh(body: RefreshBody, request: Request) -> dict[str, Any]:
    ip, agent = _client(request)
    return sessions.refresh(_db(request), body.refresh_token, ip=ip, user_agent=agent).to_dict()


@router.post("/logout", summary="End this session (or the one a refresh token belongs to)")
def logout(
    request: Request,
    actor: Annotated[Principal, Depends(signed_in)],
    body: LogoutBody | None = None,
) -> dict[str, Any]:
    refresh_token = body.refresh_token if body else None
    session_id = getattr(request.state, "session_id", None)
    if refresh_token is None and session_id is None:
        raise ApiError(
            422, "an API key has no session: send the refresh_token to end", field="refresh_token"
        )
    ended = sessions.logout(
        _db(request),
        actor,
        refresh_token=refresh_token,
        session_id=None if refresh_token else session_id,
    )
    return {"ok": True, "ended": ended}


@router.get("/me", summary="Who is signed in, and what they may do")
def me(request: Request, actor: Annotated[Principal, Depends(signed_in)]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": actor.name,
        "kind": actor.kind,
        "role": actor.role,
        "scopes": list(actor.scopes),
        "teams": list(actor.teams),
        "permissions": sorted(actor.permissions),
        "mfa_pending": actor.mfa_pending,
    }
    if actor.kind == "user" and actor.user_id is not None:
        out["user"] = users.get_user(_db(request), actor, actor.user_id)
        out["mfa"] = mfa.status(_db(request), actor)
    return out


@router.get("/me/export", summary="Everything Klaxon holds about me (JSON)")
def export_me(request: Request, actor: Annotated[Principal, Depends(signed_in)]) -> dict[str, Any]:
    return privacy.export_user(_db(request), actor, _user(actor))


class PasswordBody(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@router.post("/password", summary="Change my password (every session of mine ends)")
def change_password(
    body: PasswordBody, request: Request, actor: Annotated[Principal, Depends(signed_in)]
) -> dict[str, Any]:
    users.set_password(
        _db(request), actor, _user(actor), body.new_password, current_password=body.current_password
    )
    return {"ok": True}


# ---------------------------------------------------------------- MFA


class CodeBody(BaseModel):
    totp: str = Field(min_length=1, max_length=64)


class DisableBody(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class PolicyBody(BaseModel):
    roles: list[str] = Field(max_length=10, description="roles that must use MFA")


@router.get("/mfa", summary="My MFA state")
def mfa_status(request: Request, actor: Annotated[Principal, Depends(signed_in)]) -> dict[str, Any]:
    return mfa.status(_db(request), actor)


@router.post("/mfa/setup", summary="Start MFA enrolment: a new TOTP secret and its otpauth URI")
def mfa_setup(request: Request, actor: Annotated[Principal, Depends(signed_in)]) -> dict[str, str]:
    return mfa.setup(_db(request), actor)


@router.post("/mfa/enable", summary="Finish enrolment with a first code; returns backup codes once")
def mfa_enable(
    body: CodeBody, request: Request, actor: Annotated[Principal, Depends(signed_in)]
) -> dict[str, Any]:
    return {"ok": True, "backup_codes": mfa.enable(_db(request), actor, body.totp)}


@router.post("/mfa/disable", summary="Turn my MFA off (not where it is required)")
def mfa_disable(
    body: DisableBody, request: Request, actor: Annotated[Principal, Depends(signed_in)]
) -> dict[str, Any]:
    mfa.disable(_db(request), actor, _user(actor), password=body.password)
    return {"ok": True}


@router.post("/mfa/backup-codes", summary="New backup codes (the old ones stop working)")
def mfa_backup_codes(
    body: CodeBody, request: Request, actor: Annotated[Principal, Depends(signed_in)]
) -> dict[str, Any]:
    return {"ok": True, "backup_codes": mfa.regenerate_backup_codes(_db(request), actor, body.totp)}


@router.get("/mfa/policy", summary="Roles that must use MFA (teams: require_mfa)")
def mfa_policy(
    request: Request, actor: Annotated[Principal, Depends(permission("users.read"))]
) -> dict[str, Any]:
    with _db(request).read() as conn:
        return {"roles": mfa.required_roles(conn)}


@router.put("/mfa/policy", summary="Set the roles that must use MFA")
def set_mfa_policy(
    body: PolicyBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("system.config"))],
) -> dict[str, Any]:
    return {"roles": mfa.set_required_roles(_db(request), actor, body.roles)}


# ---------------------------------------------------------------- wiring


def _resolver(db: Database) -> Any:
    async def resolve(token: str, request: Request) -> Principal | None:
        if not token.startswith("eyJ"):  # a JWT's header; anything else is not ours
            return None
        ip, agent = _client(request)
        try:
            user_id, session_id = sessions.read_access_token(token)
            principal = await asyncio.to_thread(
                sessions.principal_for_user, db, user_id, session_id, ip=ip, user_agent=agent
            )
        except TokenError as err:
            request.state.auth_problem = str(err)
            return None
        request.state.session_id = session_id
        return principal

    return resolve


# ---------------------------------------------------------------- refusal auditing

REFUSAL_WINDOW = 60.0  # seconds: at most one access.denied entry per key in this long


@dataclass
class _Fold:
    written: float  # clock() when this key's last entry was written
    folded: int = 0  # refusals since then that no entry counts yet
    since: str | None = None  # when the first of those came (UTC, ISO 8601)
    last: tuple[Principal, str, str | None, str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Refusal:
    """One access.denied entry to write: `count` refusals of one key."""

    actor: Principal
    where: str
    permission: str | None
    reason: str
    details: dict[str, Any]
    count: int
    since: str | None = None


class RefusalFolder:
    """Bounds the access.denied entries refusals write, and keeps every refusal counted.

    Per key (client address, actor, method, route template) at most one entry per
    REFUSAL_WINDOW: the first refusal writes one (count 1); those after it in the window are
    folded in, and the next entry for that key after the window carries their count (its own
    refusal included). Folded refusals whose key goes quiet are written by `due` (called on
    every refusal, at most once a second) and by `drain` (at shutdown).

    The counter lives in this process: each API replica folds and counts its own refusals, so
    the counts of all entries add up to every refusal across replicas, but two replicas may
    each write an entry for one key in the same minute. A process that is killed (not shut
    down) loses the count of at most one window per key."""

    def __init__(self, window: float = REFUSAL_WINDOW, clock: Callable[[], float] | None = None):
        self.window = window
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, ...], _Fold] = {}
        self._next_sweep = 0.0

    def admit(self, key: tuple[str, ...], refusal: Refusal) -> Refusal | None:
        """The entry to write for this refusal now, or None when it is folded in."""
        now = self.clock()
        with self._lock:
            fold = self._keys.get(key)
            if fold is None or now - fold.written >= self.window:
                self._keys[key] = _Fold(now)
                if fold is None or not fold.folded:
                    return refusal
                return replace(refusal, count=fold.folded + 1, since=fold.since)
            fold.folded += 1
            fold.since = fold.since or datetime.now(UTC).isoformat()
            fold.last = (
                refusal.actor,
                refusal.where,
                refusal.permission,
                refusal.reason,
                refusal.details,
            )
            return None

    def due(self) -> list[Refusal]:
        """Entries for keys whose window ended with refusals folded in and none since."""
        now = self.clock()
        with self._lock:
            if now < self._next_sweep:
                return []
            self._next_sweep = now + 1.0
            out = []
            for key, fold in list(self._keys.items()):
                if now - fold.written < self.window:
                    continue
                if fold.folded:
                    out.append(self._entry(fold))
                    self._keys[key] = _Fold(now)
                else:
                    del self._keys[key]  # quiet: forget it (bounded memory)
            return out

    def drain(self) -> list[Refusal]:
        """Every folded refusal not yet written (at shutdown)."""
        with self._lock:
            out = [self._entry(fold) for fold in self._keys.values() if fold.folded]
            self._keys.clear()
            return out

    @staticmethod
    def _entry(fold: _Fold) -> Refusal:
        assert fold.last is not None
        actor, where, permission, reason, details = fold.last
        return Refusal(actor, where, permission, reason, details, fold.folded, fold.since)


def _write(db: Database, refusals: list[Refusal]) -> None:
    for r in refusals:
        extra = {"count": r.count} if r.since is None else {"count": r.count, "since": r.since}
        audit.record_refusal(
            db,
            r.actor,
            r.where,
            permission=r.permission,
            reason=r.reason,
            **r.details,
            **extra,
        )


async def audit_refusal(
    request: Request,
    status: int,
    reason: str,
    permission_name: str | None = None,
    actor: Principal | None = None,
) -> None:
    ip, agent = _client(request)
    who = (
        actor
        or getattr(request.state, "principal", None)
        or Principal("anonymous", kind="anonymous", ip=ip, user_agent=agent)
    )
    # The template, not the path: /alerts/1, /alerts/2 ... are one key, and a path that
    # matched no route cannot mint keys.
    template = getattr(request.scope.get("route"), "path", None) or "(unmatched)"
    refusal = Refusal(
        who,
        request.url.path,
        permission_name,
        getattr(request.state, "auth_problem", None) or reason,
        {"method": request.method, "status": status, "route": template},
        count=1,
    )
    folder: RefusalFolder = request.app.state.refusals
    admitted = folder.admit((ip or "", who.name, request.method, template), refusal)
    writes = ([admitted] if admitted else []) + folder.due()
    if writes:
        await asyncio.to_thread(_write, request.app.state.db, writes)


def install(app: FastAPI) -> None:
    """Accept user access tokens, and audit every 401/403 (call after errors.install), folded
    per RefusalFolder; what is still folded in is written when the app shuts down."""
    app.state.auth.resolvers.append(_resolver(app.state.db))
    app.state.login_throttle = LoginThrottle()
    app.state.refusals = RefusalFolder()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await asyncio.to_thread(_write, app.state.db, app.state.refusals.drain())

    app.router.lifespan_context = lifespan
    previous_api = cast(_Handler, app.exception_handlers[ApiError])
    previous_denied = cast(_Handler, app.exception_handlers[PermissionDenied])

    async def on_api_error(request: Request, err: Exception) -> Any:
        assert isinstance(err, ApiError)
        if err.status in (401, 403):
            await audit_refusal(request, err.status, err.message)
        return await previous_api(request, err)

    async def on_denied(request: Request, err: Exception) -> Any:
        assert isinstance(err, PermissionDenied)
        await audit_refusal(request, 403, str(err), err.permission, err.actor)
        return await previous_denied(request, err)

    async def on_auth_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, AuthError)
        headers = {}
        context: dict[str, Any] = {"field": err.field}
        if isinstance(err, AccountLockedError):
            headers["Retry-After"] = str(err.retry_after)
            context["retry_after"] = err.retry_after
        if isinstance(err, MfaRequiredError):
            context["mfa_required"] = True
        if err.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if err.status in (401, 403) and not isinstance(
            err, LoginError | MfaRequiredError | MfaInvalidError
        ):
            await audit_refusal(request, err.status, str(err))
        return JSONResponse(
            error_body(err.status, str(err), **context),
            status_code=err.status,
            headers=headers or None,
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(PermissionDenied, on_denied)
    app.add_exception_handler(AuthError, on_auth_error)
