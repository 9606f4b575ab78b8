"""The signed session cookie that keeps a reload signed in (app/remember.py)."""

from __future__ import annotations

import pytest

from app import remember

SESSION = "0123456789abcdef0123456789abcdef"


def test_a_cookie_reads_back_as_its_user_and_session() -> None:
    assert remember.read(remember.cookie_value(42, SESSION)) == (42, SESSION)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "v1.42." + SESSION,  # no signature
        "v2.42." + SESSION + "." + "0" * 64,  # unknown version
        "v1.42." + SESSION.upper() + "." + "0" * 64,
        "v1.x." + SESSION + "." + "0" * 64,
        "v1.42." + SESSION + "." + "0" * 64,  # wrong signature
    ],
)
def test_a_malformed_or_unsigned_cookie_is_ignored(value: str | None) -> None:
    assert remember.read(value) is None


def test_a_signature_is_bound_to_both_the_user_and_the_session() -> None:
    _v, _user, session, signature = remember.cookie_value(42, SESSION).split(".")
    assert remember.read(f"v1.43.{session}.{signature}") is None  # another user
    other = "f" * 32
    assert remember.read(f"v1.42.{other}.{signature}") is None  # another session


def test_the_signature_depends_on_the_server_key(monkeypatch: pytest.MonkeyPatch) -> None:
    value = remember.cookie_value(42, SESSION)
    monkeypatch.setenv("KLAXON_SECRET_KEY", "another server's key, 32 characters or more")
    assert remember.read(value) is None
