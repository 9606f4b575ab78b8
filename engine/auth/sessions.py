"""Sessions: login, short-lived access tokens, rotating refresh tokens, logout.

For the API and for the web app, which calls these functions directly (not over HTTP):

- `login(db, email, password, totp=None, ip=None, user_agent=None) -> LoginResult`: checks
  the password (argon2), the lockout and, when the account has MFA, the TOTP or backup code.
  Raises LoginError (wrong email or password), AccountLockedError (wait `retry_after`
  seconds), MfaRequiredError (send `totp`) or MfaInvalidError. On success returns the
  Principal, an access token, a refresh token, and `mfa_setup_required` when the user must
  enrol in MFA before doing anything else (their Principal is `mfa_pending`).
- `refresh(db, refresh_token) -> LoginResult`: a new access token and a new refresh token;
  the old refresh token stops working. Presenting a refresh token that was already rotated
  means it was copied: the whole family (the session) is revoked, and TokenError is raised.
- `logout(db, actor, refresh_token=None, session_id=None)`: revokes the session; its access
  tokens stop working at once.
- `principal_for_user(db, user_id, session_id=None) -> Principal`: who a user is now (role,
  teams, MFA state), for a session the web app keeps (its user id and `session_id`, never a
  token); TokenError if the user or the session is no longer valid, including a session idle
  for longer than KLAXON_SESSION_MINUTES (the session timeout). Each call counts as activity.
- `principal_from_token(db, token, ip, user_agent) -> Principal`: for a Bearer access token.

The session timeout is enforced here, in the store, for the API and the web app alike: a
session's live refresh token carries the idle deadline, which every refresh and every
authenticated request moves forward (written at most once a minute per session). A session
idle past it is refused even while its last access token has not expired yet.

Access tokens are JWTs (HS256, signed with engine.crypto.signing_key()) that live 15 minutes
and name the user (`sub`) and the session (`sid`, the refresh-token family). Each request
reloads the user, so a role change, a deactivation or a logout takes effect at once.
Refresh tokens (`klr_...`) are kept as keyed hashes in `refresh_tokens`; they expire after
KLAXON_SESSION_MINUTES without use (each refresh or request starts a new period).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Connection, insert, select, update

from engine.auth import audit
from engine.auth.errors import (
    AccountLockedError,
    InvalidInputError,
    LoginError,
    MfaInvalidError,
    MfaRequiredError,
    TokenError,
)
from engine.auth.mfa import check_second_factor, is_required
from engine.auth.passwords import hash_password, spend_time, verify_password
from engine.auth.principal import Principal
from engine.auth.users import (
    check_not_locked,
    find_user,
    normalize_email,
    note_failure,
    note_success,
    teams_of,
)
from engine.config import settings
from engine.crypto import hash_token, signing_key
from engine.store.db import Database, orm
from engine.store.models import RefreshToken, User

ACCESS_MINUTES = 15
ISSUER = "klaxon"
# Moving a session's idle deadline is a write: do it at most once a minute per session.
SLIDE_EVERY = timedelta(seconds=60)
REFRESH_PREFIX = "klr"


@dataclass(frozen=True)
class LoginResult:
    principal: Principal
    access_token: str
    refresh_token: str
    session_id: str
    expires_in: int = ACCESS_MINUTES * 60
    mfa_setup_required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "mfa_setup_required": self.mfa_setup_required,
        }


def issue_access_token(user_id: int, session_id: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "sub": str(user_id),
        "sid": session_id,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=ACCESS_MINUTES)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, signing_key(), algorithm="HS256")


def read_access_token(token: str) -> tuple[int, str]:
    """(user id, session id) of a valid access token; TokenError if expired, forged or not one."""
    try:
        claims = jwt.decode(
            token,
            signing_key(),
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the access token has expired: refresh it or log in again") from None
    except jwt.PyJWTError:
        raise TokenError("the access token is not valid") from None
    if claims.get("typ") != "access" or not str(claims["sub"]).isdigit():
        raise TokenError("the access token is not valid")
    return int(claims["sub"]), str(claims["sid"])


def _refresh_ttl() -> timedelta:
    return timedelta(minutes=max(1, settings().session_minutes))


def session_timeout() -> timedelta:
    """How long a session may stay idle (KLAXON_SESSION_MINUTES, at least one minute)."""
    return _refresh_ttl()


def _new_refresh(conn: Connection, user_id: int, family: str, now: datetime) -> str:
    token = f"{REFRESH_PREFIX}_{secrets.token_urlsafe(32)}"
    conn.execute(
        insert(RefreshToken).values(
            user_id=user_id,
            family=family,
            token_hash=hash_token(token),
            issued_at=now,
            expires_at=now + _refresh_ttl(),
        )
    )
    return token


# ---------------------------------------------------------------- login


def login(
    db: Database,
    email: str,
    password: str,
    totp: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> LoginResult:
    try:
        email = normalize_email(email)
    except InvalidInputError:
        email = email.strip().lower()[:256]
    anonymous = Principal("anonymous", kind="anonymous", ip=ip, user_agent=user_agent)
    with db.read() as conn:
        user = find_user(conn, email)
    if user is None or not user.is_active or user.erased_at is not None:
        spend_time(password)
        with db.connect() as conn:
            audit.record(
                conn,
                anonymous,
                "auth.login.failed",
                "user",
                None,
                after={"email": email, "reason": "unknown or inactive account"},
            )
        raise LoginError("wrong email or password")
    actor = Principal(
        user.email, kind="user", role=user.role, user_id=user.id, ip=ip, user_agent=user_agent
    )
    now = datetime.now(UTC)
    try:
        check_not_locked(user, now)
    except AccountLockedError:
        with db.connect() as conn:
            audit.record(
                conn,
                actor,
                "auth.login.refused",
                "user",
                user.id,
                after={
                    "reason": "locked",
                    "locked_until": user.locked_until.isoformat() if user.locked_until else None,
                },
            )
        raise
    ok, needs_rehash = verify_password(user.password_hash, password)
    if not ok:
        _fail(db, user.id, actor, "wrong password")
        raise LoginError("wrong email or password")
    failure: Exception | None = None
    with db.connect() as conn:
        if user.mfa_enabled:
            if not totp:
                failure = MfaRequiredError(
                    "this account has two-factor login: "
                    "send the code from the authenticator app as totp"
                )
            else:
                used = check_second_factor(conn, user, totp)
                if used is None:
                    failure = MfaInvalidError("the code is wrong or was already used")
                elif used == "backup_code":
                    audit.record(conn, actor, "mfa.backup_code_used", "user", user.id)
        if failure is None:
            note_success(conn, user.id, hash_password(password) if needs_rehash else None)
            family = uuid.uuid4().hex
            refresh_token = _new_refresh(conn, user.id, family, now)
            pending = not user.mfa_enabled and is_required(conn, user)
            principal = _principal(conn, user, ip, user_agent, pending)
            audit.record(
                conn, actor, "auth.login", "session", family, after={"mfa": user.mfa_enabled}
            )
    if isinstance(failure, MfaInvalidError):
        _fail(db, user.id, actor, "wrong second factor")
    if failure is not None:
        raise failure
    return LoginResult(
        principal,
        issue_access_token(user.id, family, now),
        refresh_token,
        family,
        mfa_setup_required=pending,
    )


def _fail(db: Database, user_id: int, actor: Principal, reason: str) -> None:
    with db.connect() as conn:
        note_failure(conn, user_id, actor, reason)


def _principal(
    conn: Connection, user: User, ip: str | None, user_agent: str | None, mfa_pending: bool
) -> Principal:
    return Principal(
        user.email,
        kind="user",
        role=user.role,
        user_id=user.id,
        ip=ip,
        user_agent=user_agent,
        teams=tuple(teams_of(conn, [user.id])[user.id]),
        mfa_pending=mfa_pending,
    )


# ---------------------------------------------------------------- refresh and logout


def refresh(
    db: Database, refresh_token: str, ip: str | None = None, user_agent: str | None = None
) -> LoginResult:
    digest = hash_token(refresh_token.strip())
    now = datetime.now(UTC)
    problem: TokenError | None = None
    with db.connect() as conn:
        row = (
            orm(conn)
            .scalars(
                select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
            )
            .one_or_none()
        )
        if row is None:
            raise TokenError("unknown refresh token", field="refresh_token")
        user = orm(conn).scalars(select(User).where(User.id == row.user_id)).one()
        actor = Principal(
            user.email, kind="user", role=user.role, user_id=user.id, ip=ip, user_agent=user_agent
        )
        if row.revoked_at is not None:
            problem = TokenError("the session was ended: log in again", field="refresh_token")
        elif row.rotated_at is not None:
            # A rotated token came back: someone holds a copy. End the whole session.
            _revoke_family(conn, row.family, now)
            audit.record(
                conn,
                actor,
                "auth.refresh.reuse",
                "session",
                row.family,
                after={"revoked": "session"},
            )
            problem = TokenError(
                "this refresh token was already used: the session is revoked, log in again",
                field="refresh_token",
            )
        elif row.expires_at <= now:
            problem = TokenError("the session expired: log in again", field="refresh_token")
        elif not user.is_active or user.erased_at is not None:
            problem = TokenError("the account is disabled", field="refresh_token")
        else:
            conn.execute(
                update(RefreshToken).where(RefreshToken.id == row.id).values(rotated_at=now)
            )
            new_token = _new_refresh(conn, user.id, row.family, now)
            pending = not user.mfa_enabled and is_required(conn, user)
            principal = _principal(conn, user, ip, user_agent, pending)
    if problem is not None:
        raise problem
    return LoginResult(
        principal,
        issue_access_token(user.id, row.family, now),
        new_token,
        row.family,
        mfa_setup_required=pending,
    )


def _revoke_family(conn: Connection, family: str, now: datetime) -> int:
    stmt = update(RefreshToken).where(
        RefreshToken.family == family, RefreshToken.revoked_at.is_(None)
    )
    return conn.execute(stmt.values(revoked_at=now)).rowcount


def logout(
    db: Database,
    actor: Principal,
    *,
    refresh_token: str | None = None,
    session_id: str | None = None,
) -> bool:
    """End a session, named by its refresh token or its id; True if it was still open.

    Users end their own sessions (the web app passes `session_id`, the API the refresh token
    or the session of the access token); only an actor with users.write ends someone else's.
    Access tokens of the session stop working at once; the logout is audited."""
    with db.connect() as conn:
        family = session_id
        if refresh_token:
            row = (
                orm(conn)
                .scalars(
                    select(RefreshToken).where(
                        RefreshToken.token_hash == hash_token(refresh_token.strip())
                    )
                )
                .one_or_none()
            )
            if row is None or (actor.kind == "user" and row.user_id != actor.user_id):
                raise TokenError("unknown refresh token", field="refresh_token")
            family = row.family
        if not family:
            raise TokenError("say which session to end: refresh_token", field="refresh_token")
        if refresh_token is None and not actor.can("users.write"):
            owner = conn.execute(
                select(RefreshToken.user_id).where(RefreshToken.family == family).limit(1)
            ).scalar_one_or_none()
            if owner is None or owner != actor.user_id:
                raise TokenError("unknown session", field="session_id")
        done = _revoke_family(conn, family, datetime.now(UTC))
        audit.record(conn, actor, "auth.logout", "session", family)
    return bool(done)


# ---------------------------------------------------------------- who is calling


def principal_for_user(
    db: Database,
    user_id: int,
    session_id: str | None = None,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Principal:
    """Who a signed-in user is now, for each request or each web-app run.

    With `session_id` (the `LoginResult.session_id` of their login), the session must still be
    open: not logged out, not revoked by refresh-token reuse, and not idle for longer than
    `session_timeout()`. The call counts as activity and moves the idle deadline forward.
    Raises TokenError saying which ("the session was ended", "the session timed out ...").
    """
    now = datetime.now(UTC)
    with db.read() as conn:
        user = orm(conn).scalars(select(User).where(User.id == user_id)).one_or_none()
        if user is None or not user.is_active or user.erased_at is not None:
            raise TokenError("the account is disabled or gone")
        live = None
        if session_id is not None:
            live = conn.execute(
                select(RefreshToken.id, RefreshToken.expires_at)
                .where(
                    RefreshToken.family == session_id,
                    RefreshToken.user_id == user_id,
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.rotated_at.is_(None),
                )
                .order_by(RefreshToken.id.desc())
                .limit(1)
            ).first()
            if live is None:
                raise TokenError("the session was ended: log in again")
            if live.expires_at <= now:
                minutes = int(session_timeout().total_seconds() // 60)
                raise TokenError(
                    f"the session timed out after {minutes} minutes without activity: log in again"
                )
        pending = not user.mfa_enabled and is_required(conn, user)
        principal = _principal(conn, user, ip, user_agent, pending)
    if live is not None and live.expires_at < now + session_timeout() - SLIDE_EVERY:
        _slide(db, int(live.id), now)
    return principal


def _slide(db: Database, token_id: int, now: datetime) -> None:
    """Move an open session's idle deadline to now + the timeout."""
    with db.connect() as conn:
        conn.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.revoked_at.is_(None))
            .values(expires_at=now + session_timeout())
        )


def principal_from_token(
    db: Database, token: str, ip: str | None = None, user_agent: str | None = None
) -> Principal:
    user_id, session_id = read_access_token(token)
    return principal_for_user(db, user_id, session_id, ip=ip, user_agent=user_agent)
