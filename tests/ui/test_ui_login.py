"""Signing in with the API's accounts: a good password opens the app, a bad one is a message,
an account with MFA is asked for its code, an idle session times out, signing out ends the
session in the store too."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine.auth import mfa, sessions
from engine.auth.demo import DEMO_DOMAIN, demo_password
from engine.auth.errors import TokenError

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def _signed_out() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    return at.run()


def _submit(at: AppTest, email: str, password: str, code: str | None = None) -> AppTest:
    at.text_input(key="login.email").input(email)
    at.text_input(key="login.password").input(password)
    if code is not None:
        at.text_input(key="login.totp").input(code)
    at.button[0].click()  # the form's only button: "Sign in"
    return at.run()


def _titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def test_the_demo_operator_signs_in(demo_url: str) -> None:
    at = _submit(_signed_out(), f"operator@{DEMO_DOMAIN}", demo_password("operator"))
    assert not at.exception
    assert not at.error
    assert "Overview" in _titles(at)
    assert any("operator@" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize(
    ("email", "password", "says"),
    [
        (f"operator@{DEMO_DOMAIN}", "not-the-password", "wrong email or password"),
        ("nobody@example.com", "whatever-password", "wrong email or password"),
        ("", "", "Enter your email and your password"),
    ],
)
def test_a_wrong_login_is_a_message(demo_url: str, email: str, password: str, says: str) -> None:
    at = _submit(_signed_out(), email, password)
    assert not at.exception
    assert any(says.lower() in e.value.lower() for e in at.error), [e.value for e in at.error]
    assert "Overview" not in _titles(at)


def test_an_account_with_mfa_is_asked_for_its_code(demo_url: str, demo_db: Any) -> None:
    email, password = f"operator@{DEMO_DOMAIN}", demo_password("operator")
    me = sessions.login(demo_db, email, password).principal
    secret = mfa.setup(demo_db, me)["secret"]
    import pyotp

    backup = mfa.enable(demo_db, me, pyotp.TOTP(secret).now())

    at = _submit(_signed_out(), email, password)
    assert not at.exception
    assert at.text_input(key="login.totp")  # the password was right: now the code
    assert "Overview" not in _titles(at)

    at = _submit(at, email, password, "000000")
    assert any("code" in e.value.lower() for e in at.error), [e.value for e in at.error]
    assert "Overview" not in _titles(at)

    at = _submit(at, email, password, backup[0])
    assert not at.exception
    assert "Overview" in _titles(at)


def test_an_idle_session_times_out(
    session_of: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KLAXON_SESSION_MINUTES", "15")
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in session_of("operator").items():
        at.session_state[key] = value
    at.session_state["auth.last_active"] = time.time() - 16 * 60
    at.run()
    assert not at.exception
    assert "Overview" not in _titles(at)
    assert any("15 minutes without activity" in i.value for i in at.info)
    assert at.text_input(key="login.email")


def test_signing_out_ends_the_session(demo_db: Any, session_of: Any) -> None:
    at = AppTest.from_file(MAIN, default_timeout=30)
    signed = session_of("operator")
    for key, value in signed.items():
        at.session_state[key] = value
    at.run()
    assert "Overview" in _titles(at)
    at.button(key="app.sign_out").click().run()
    assert not at.exception
    assert any("signed out" in i.value for i in at.info)
    assert at.text_input(key="login.email")
    with pytest.raises(TokenError):  # the API's refresh token of this login is revoked too
        sessions.principal_for_user(demo_db, signed["auth.user_id"], signed["auth.session_id"])


def test_a_session_ended_elsewhere_signs_the_page_out(demo_db: Any, session_of: Any) -> None:
    at = AppTest.from_file(MAIN, default_timeout=30)
    signed = session_of("operator")
    for key, value in signed.items():
        at.session_state[key] = value
    at.run()
    me = sessions.principal_for_user(demo_db, signed["auth.user_id"])
    sessions.logout(demo_db, me, session_id=signed["auth.session_id"])
    at.run()
    assert not at.exception
    assert "Overview" not in _titles(at)
    assert any("log in again" in i.value for i in at.info)
