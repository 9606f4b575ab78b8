"""Session state of the web app: every key it keeps, declared once, with typed get/set helpers.

Widget keys (`<page>.<widget>`, STYLE.md §6) belong to their widgets; the keys here are the
app's own memory: who is signed in, which alert is open, saved views, a one-shot message. They
are named `auth.*` or `state.<page>.*`, so they never collide with a widget's key.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st

from engine.auth.principal import Principal

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    """One session-state key, its default and what it holds."""

    name: str
    default: Callable[[], T]
    doc: str

    def get(self) -> T:
        if self.name not in st.session_state:
            st.session_state[self.name] = self.default()
        value: T = st.session_state[self.name]
        return value

    def set(self, value: T) -> None:
        st.session_state[self.name] = value

    def reset(self) -> None:
        st.session_state[self.name] = self.default()


# ---------------------------------------------------------------- signing in

USER_ID: Key[int | None] = Key("auth.user_id", lambda: None, "the signed-in user's id")
SESSION_ID: Key[str | None] = Key(
    "auth.session_id", lambda: None, "the session (refresh-token family) the login opened"
)
EMAIL: Key[str] = Key("auth.email", str, "the signed-in user's email, for the sidebar")
LAST_ACTIVE: Key[float] = Key(
    "auth.last_active", time.time, "when the user last did something (session timeout)"
)
MFA_PENDING: Key[bool] = Key(
    "auth.mfa_step", bool, "the password was right; the login form now asks for the code"
)
PRINCIPAL: Key[Principal | None] = Key(
    "auth.principal", lambda: None, "who the user is now (role, teams), reloaded every run"
)
SIGNED_OUT: Key[bool] = Key(
    "auth.signed_out",
    bool,
    "the user signed out (or was signed out) in this tab: do not resume from the cookie",
)
NOTICE: Key[str] = Key(
    "state.app.notice", str, "a message shown once on the next page (e.g. why you were signed out)"
)

# ---------------------------------------------------------------- working

OPEN_ALERT: Key[int | None] = Key(
    "state.triage.open_alert", lambda: None, "the alert shown in detail"
)
LAST_PICK: Key[tuple[int, ...]] = Key(
    "state.triage.last_pick", tuple, "the table rows selected last run (a new single pick opens it)"
)
SAVED_VIEWS: Key[dict[str, dict[str, Any]]] = Key(
    "state.triage.saved_views", dict, "named triage filter sets of this session"
)
OPEN_INCIDENT: Key[int | None] = Key(
    "state.incidents.open_incident", lambda: None, "the incident shown with its alerts"
)
SILENCE_DRAFT: Key[str] = Key(
    "state.silences.draft", str, "a matcher handed over by 'silence similar' on the triage page"
)
RULES_BASE: Key[int | None] = Key(
    "state.rules.base_version",
    lambda: None,
    "the stored version the rule editor's text started from",
)
BACKTEST: Key[dict[str, Any]] = Key(
    "state.rules.backtest", dict, "the last backtest's result, kept while the author edits"
)
PREVIEW: Key[dict[str, Any]] = Key(
    "state.silences.preview", dict, "the last silence preview's result"
)
MFA_SETUP: Key[dict[str, str]] = Key(
    "state.account.mfa_setup", dict, "the TOTP secret and URI of an enrolment in progress"
)
NEW_KEY_TOKEN: Key[str] = Key(
    "state.admin.new_key_token", str, "an API key just made: shown once, then forgotten"
)
DRILL: Key[dict[str, Any]] = Key(
    "state.analytics.drill", dict, "the chart point clicked: the alert filters behind it"
)

ALL: tuple[Key[Any], ...] = (
    USER_ID,
    SESSION_ID,
    EMAIL,
    LAST_ACTIVE,
    MFA_PENDING,
    PRINCIPAL,
    SIGNED_OUT,
    NOTICE,
    OPEN_ALERT,
    LAST_PICK,
    SAVED_VIEWS,
    OPEN_INCIDENT,
    SILENCE_DRAFT,
    RULES_BASE,
    BACKTEST,
    PREVIEW,
    MFA_SETUP,
    NEW_KEY_TOKEN,
    DRILL,
)


def init() -> None:
    """Declare every key with its default (kept if already set, e.g. by a test)."""
    for key in ALL:
        if key.name not in st.session_state:
            st.session_state[key.name] = key.default()


def sign_in(user_id: int, session_id: str, email: str) -> None:
    USER_ID.set(user_id)
    SESSION_ID.set(session_id)
    EMAIL.set(email)
    MFA_PENDING.set(False)
    SIGNED_OUT.set(False)
    LAST_ACTIVE.set(time.time())


def sign_out(notice: str = "") -> None:
    """Forget the user and everything they were looking at."""
    for key in ALL:
        key.reset()
    SIGNED_OUT.set(True)
    if notice:
        NOTICE.set(notice)


def take_notice() -> str:
    """The pending one-shot message, cleared as it is read."""
    text = NOTICE.get()
    NOTICE.reset()
    return text


def remember_widgets(names: list[str]) -> dict[str, Any]:
    """The current values of some widgets (a saved view), copied so later edits don't leak."""
    return {n: copy.deepcopy(st.session_state[n]) for n in names if n in st.session_state}


def restore_widgets(values: dict[str, Any]) -> None:
    """Put saved widget values back; call before the widgets are drawn (e.g. in a callback)."""
    for name, value in values.items():
        st.session_state[name] = copy.deepcopy(value)
