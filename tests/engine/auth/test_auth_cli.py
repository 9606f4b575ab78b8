"""`klaxon user add/list/set/unlock`, `klaxon team add/list` and the demo accounts."""

from __future__ import annotations

import io
import sys

import pytest

from engine.auth import sessions
from engine.auth.demo import create_demo_users, demo_password
from engine.auth.principal import ROLES
from engine.cli import main

PASSWORD = "plenty-long-passphrase-42"


def _run(
    argv: list[str], capsys, stdin: str | None = None, monkeypatch=None
) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.fixture
def cli_db(db, db_url, monkeypatch):
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)
    return db


def test_user_add_with_a_password_from_stdin_then_login(cli_db, capsys, monkeypatch) -> None:
    code, out, _ = _run(
        [
            "user",
            "add",
            "--email",
            "Ivy@Example.com",
            "--role",
            "manager",
            "--name",
            "Ivy",
            "--password-stdin",
        ],
        capsys,
        PASSWORD + "\n",
        monkeypatch,
    )
    assert code == 0
    assert "created user ivy@example.com (manager)" in out
    assert PASSWORD not in out
    assert sessions.login(cli_db, "ivy@example.com", PASSWORD).principal.role == "manager"
    code, out, _ = _run(["user", "list"], capsys)
    assert "ivy@example.com" in out
    assert "manager" in out


def test_user_add_without_stdin_makes_up_a_password_shown_once(cli_db, capsys) -> None:
    code, out, _ = _run(["user", "add", "--email", "jo@example.com", "--role", "viewer"], capsys)
    assert code == 0
    password = out.split("password (shown once): ", 1)[1].strip()
    assert sessions.login(cli_db, "jo@example.com", password).principal.role == "viewer"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--email", "bad", "--role", "viewer"], None, "email: 'bad' is not an email address"),
        (
            ["--email", "k@example.com", "--role", "viewer", "--password-stdin"],
            "short\n",
            "password: the password needs at least 12",
        ),
        (
            ["--email", "k@example.com", "--role", "viewer", "--password-stdin"],
            "",
            "no password on stdin",
        ),
        (
            ["--email", "k@example.com", "--role", "viewer", "--team", "ghosts"],
            None,
            "teams: no team named 'ghosts'",
        ),
    ],
)
def test_user_add_refusals_exit_2_with_the_field(
    cli_db, capsys, monkeypatch, argv, stdin, message
) -> None:
    code, _, err = _run(["user", "add", *argv], capsys, stdin, monkeypatch)
    assert code == 2
    assert message in err
    code, out, _ = _run(["user", "list"], capsys)
    assert "k@example.com" not in out


def test_an_unknown_role_is_refused_by_argparse(cli_db, capsys) -> None:
    code, _, err = _run(["user", "add", "--email", "l@example.com", "--role", "god"], capsys)
    assert code == 2
    assert "invalid choice" in err


def test_unlock(cli_db, capsys) -> None:
    _run(["user", "add", "--email", "m@example.com", "--role", "viewer"], capsys)
    code, out, _ = _run(["user", "unlock", "m@example.com"], capsys)
    assert code == 0
    assert "unlocked" in out
    code, _, err = _run(["user", "unlock", "nobody@example.com"], capsys)
    assert code == 2
    assert "no user with email" in err


def test_demo_users_one_per_role_stable_across_runs(db) -> None:
    first = create_demo_users(db)
    assert [role for _, role, _ in first] == list(ROLES)
    assert create_demo_users(db) == first  # a second `klaxon up --demo` prints the same logins
    for email, role, password in first:
        assert password == demo_password(role)
        assert sessions.login(db, email, password).principal.role == role


def test_user_set_changes_role_and_ends_sessions_when_deactivated(cli_db, capsys) -> None:
    _run(["user", "add", "--email", "n@example.com", "--role", "viewer"], capsys)
    _run(["user", "add", "--email", "boss@example.com", "--role", "admin"], capsys)
    code, out, _ = _run(["user", "set", "n@example.com", "--role", "operator"], capsys)
    assert (code, out.strip()) == (0, "n@example.com: operator, active")
    code, out, _ = _run(["user", "set", "n@example.com", "--inactive"], capsys)
    assert (code, out.strip()) == (0, "n@example.com: operator, inactive")
    code, _, err = _run(["user", "set", "n@example.com"], capsys)
    assert code == 2
    assert "say what to change" in err
    code, _, err = _run(["user", "set", "boss@example.com", "--role", "viewer"], capsys)
    assert code == 2
    assert "role: this is the last active admin" in err


def test_team_add_and_list(cli_db, capsys) -> None:
    _run(["user", "add", "--email", "p@example.com", "--role", "operator"], capsys)
    code, out, _ = _run(
        ["team", "add", "platform", "--member", "p@example.com", "--require-mfa"], capsys
    )
    assert (code, out.strip()) == (0, "created team platform with 1 members, MFA required")
    code, out, _ = _run(["team", "list"], capsys)
    assert code == 0
    assert out.split() == ["1", "platform", "mfa", "p@example.com"]
    code, _, err = _run(["team", "add", "platform"], capsys)
    assert code == 2
    assert "name: a team named 'platform' already exists" in err
    code, _, err = _run(["team", "add", "bad name"], capsys)
    assert code == 2
    assert "name: 'bad name' is not a team name" in err


def test_changes_from_the_shell_are_audited_as_the_os_user(cli_db, capsys) -> None:
    import getpass

    from sqlalchemy import select

    from engine.store.models import AuditEntry

    _run(["user", "add", "--email", "q@example.com", "--role", "viewer"], capsys)
    with cli_db.read() as conn:
        entry = conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.actor, entry.user_agent) == (
        "user.create",
        f"cli:{getpass.getuser()}",
        "klaxon cli",
    )
