"""Signing in and out of the web app with the accounts of engine.auth (the API's accounts).

The session keeps the user's id and their session id (the refresh-token family the login
opened), never a password or a token. Every run reloads who the user is, so a role change, a
deactivation or a logout elsewhere takes effect at once; KLAXON_SESSION_MINUTES without
activity signs the user out. A reload continues the session through the signed cookie of
app/remember.py.
"""

from __future__ import annotations

import time

from app import remember, services, state
from engine.auth import sessions
from engine.auth.errors import TokenError
from engine.auth.principal import Principal
from engine.config import settings


def current() -> Principal | None:
    """The signed-in user as they are now, or None (signed out, timed out, revoked)."""
    user_id = state.USER_ID.get()
    if user_id is None:
        state.PRINCIPAL.set(None)
        return None
    idle = time.time() - state.LAST_ACTIVE.get()
    limit_s = max(1, settings().session_minutes) * 60
    if idle > limit_s:
        _end_session()
        state.sign_out(
            f"You were signed out after {limit_s // 60} minutes without activity. Sign in again."
        )
        return None
    try:
        principal = sessions.principal_for_user(
            services.database(), user_id, state.SESSION_ID.get()
        )
    except TokenError as err:
        state.sign_out(f"You were signed out: {err}.")
        return None
    state.PRINCIPAL.set(principal)
    state.LAST_ACTIVE.set(time.time())
    return principal


def resume() -> Principal | None:
    """After a reload: continue the session the browser's cookie names, if it is still open."""
    if state.SIGNED_OUT.get():  # signed out in this tab: the cookie is being deleted
        return None
    found = remember.read(remember.from_browser())
    if found is None:
        return None
    user_id, session_id = found
    try:
        principal = sessions.principal_for_user(services.database(), user_id, session_id)
    except TokenError:  # signed out, revoked or timed out since: the login page deletes it
        return None
    state.sign_in(user_id, session_id, principal.name)
    state.PRINCIPAL.set(principal)
    return principal


def sign_in(email: str, password: str, totp: str | None = None) -> sessions.LoginResult:
    """Log in (raises LoginError, AccountLockedError, MfaRequiredError, MfaInvalidError)."""
    result = sessions.login(
        services.database(), email, password, totp=totp or None, user_agent="klaxon web app"
    )
    principal = result.principal
    assert principal.user_id is not None
    state.sign_in(principal.user_id, result.session_id, principal.name)
    state.PRINCIPAL.set(principal)
    return result


def sign_out() -> None:
    _end_session()
    state.sign_out("You are signed out.")


def _end_session() -> None:
    session_id = state.SESSION_ID.get()
    principal = state.PRINCIPAL.get()
    if session_id and principal is not None:
        services.attempt(
            "end the session",
            sessions.logout,
            services.database(),
            principal,
            session_id=session_id,
        )
