"""Staying signed in when the browser reloads the page.

Streamlit keeps session state per connection, and a reload (or a second tab) opens a new
connection: without this module every reload would sign the user out. After sign-in the app
gives the browser a session cookie, `klaxon_session`, naming the user and their session (the
refresh-token family the login opened), signed with the server's key. A new connection that
brings a validly signed cookie whose session is still open (not signed out, not revoked, not
idle past KLAXON_SESSION_MINUTES: `sessions.principal_for_user` checks all three) continues
that session; anything else is ignored and the cookie deleted.

The cookie holds no password and no token that the API accepts, and it dies with the session:
signing out (here or through the API), an administrator revoking the session, or the idle
timeout makes it worthless at once, because the session it names is checked on every run. It is
a browser-session cookie (gone when the browser closes), `SameSite=Strict`, and `Secure` when the
app is served over HTTPS.

Streamlit can read cookies (`st.context.cookies`, as the browser sent them when the connection
opened) but has no call to set one, so the app sets and deletes it with a line of JavaScript
(`st.html(..., unsafe_allow_javascript=True)`) whose only input is the signed value built here.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import streamlit as st

from engine.crypto import signing_key

COOKIE = "klaxon_session"
_VALUE = re.compile(r"^v1\.(\d{1,18})\.([0-9a-f]{32})\.([0-9a-f]{64})$")


def _signature(user_id: int, session_id: str) -> str:
    message = f"klaxon web session:{user_id}:{session_id}".encode()
    return hmac.new(signing_key(), message, hashlib.sha256).hexdigest()


def cookie_value(user_id: int, session_id: str) -> str:
    """The signed cookie naming this user's session."""
    return f"v1.{user_id}.{session_id}.{_signature(user_id, session_id)}"


def read(value: str | None) -> tuple[int, str] | None:
    """(user id, session id) from a cookie value, or None when it is malformed or forged."""
    found = _VALUE.match((value or "").strip())
    if found is None:
        return None
    user_id, session_id, signature = int(found[1]), found[2], found[3]
    if not hmac.compare_digest(signature, _signature(user_id, session_id)):
        return None
    return user_id, session_id


def from_browser() -> str | None:
    """The cookie as the browser sent it when this connection opened (None outside a browser)."""
    try:
        return st.context.cookies.get(COOKIE)
    except Exception:  # no browser connection (AppTest, a bare script run)
        return None


def _script(cookie: str) -> None:
    st.html(
        "<script>document.cookie = "
        f'"{cookie}; Path=/; SameSite=Strict" + '
        '(location.protocol === "https:" ? "; Secure" : "");</script>',
        unsafe_allow_javascript=True,
    )


def keep(user_id: int, session_id: str) -> None:
    """Have the browser hold the cookie for this session (idempotent: every signed-in run)."""
    value = cookie_value(user_id, session_id)
    if from_browser() != value:
        _script(f"{COOKIE}={value}")


def forget(*, always: bool = False) -> None:
    """Have the browser delete the cookie: if it sent one, or `always` (after a sign-out in
    this connection, which may have set the cookie after the browser last sent it)."""
    if always or from_browser():
        _script(f"{COOKIE}=; Max-Age=0")
