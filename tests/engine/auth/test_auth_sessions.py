"""Sessions and MFA as the web app uses them: login, refresh rotation, reuse detection,
logout, expiry, TOTP with replay protection, backup codes, enforcement by team or role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from engine.auth import mfa, sessions, teams, users
from engine.auth.errors import (
    AccountLockedError,
    ConflictError,
    LoginError,
    MfaInvalidError,
    MfaRequiredError,
    TokenError,
)
from engine.auth.principal import SYSTEM, PermissionDenied
from engine.store.models import AuditEntry, RefreshToken, User

PASSWORD = "plenty-long-passphrase-42"


def _user(db, email="ann@example.com", role="operator", **kw):
    return users.create_user(db, email=email, role=role, password=PASSWORD, **kw)


def _actions(db) -> list[str]:
    with db.read() as conn:
        return list(conn.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars())


def test_login_gives_a_principal_and_tokens_that_resolve(db) -> None:
    made = _user(db, teams=[])
    result = sessions.login(db, "ANN@example.com", PASSWORD, ip="10.0.0.1", user_agent="pytest")
    assert result.principal.name == "ann@example.com"
    assert result.principal.role == "operator"
    assert result.principal.ip == "10.0.0.1"
    assert not result.mfa_setup_required
    assert result.refresh_token.startswith("klr_")
    assert result.access_token.startswith("eyJ")
    again = sessions.principal_from_token(db, result.access_token)
    assert again.user_id == made["id"]
    assert again.can("alerts.write")
    assert not again.can("users.write")
    assert sessions.principal_for_user(db, made["id"], result.session_id).name == "ann@example.com"
    with db.read() as conn:
        stored = conn.execute(select(RefreshToken.token_hash)).scalars().all()
    assert result.refresh_token not in stored
    assert len(stored) == 1
    assert _actions(db)[-1] == "auth.login"


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@example.com", "wrong-password-123"), ("nobody@example.com", PASSWORD), ("", "x")],
)
def test_wrong_email_or_password_is_one_message_and_audited(db, email, password) -> None:
    _user(db)
    with pytest.raises(LoginError, match="wrong email or password"):
        sessions.login(db, email, password)
    assert _actions(db)[-1] == "auth.login.failed"


def test_brute_force_is_slowed_then_locked_and_the_right_password_waits_too(db) -> None:
    made = _user(db)
    refusals = []
    for _ in range(3 * users.LOCK_AFTER):
        try:
            sessions.login(db, "ann@example.com", "guess-password-000")
            raise AssertionError("a wrong password logged in")
        except LoginError:
            refusals.append("wrong")
        except AccountLockedError:
            refusals.append("wait")
            with db.connect() as conn:
                count = conn.execute(
                    select(User.failed_logins).where(User.id == made["id"])
                ).scalar_one()
                if count >= users.LOCK_AFTER:
                    break
                # Wait out the throttle without sleeping: move the row's clock.
                conn.execute(update(User).where(User.id == made["id"]).values(locked_until=None))
    # Three tries, then a wait after each failure, then locked after the 10th.
    assert refusals == ["wrong"] * 3 + ["wait", "wrong"] * (users.LOCK_AFTER - 3) + ["wait"]
    with pytest.raises(AccountLockedError, match="locked") as info:
        sessions.login(db, "ann@example.com", PASSWORD)
    assert info.value.retry_after > 60
    actions = _actions(db)
    assert actions.count("auth.login.failed") == users.LOCK_AFTER
    assert actions.count("auth.lockout") == 1
    assert "auth.login.refused" in actions


def test_refresh_rotates_and_reuse_revokes_the_family(db) -> None:
    _user(db)
    first = sessions.login(db, "ann@example.com", PASSWORD)
    second = sessions.refresh(db, first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    third = sessions.refresh(db, second.refresh_token)
    # The first token comes back: someone copied it. The whole session ends.
    with pytest.raises(TokenError, match="already used"):
        sessions.refresh(db, first.refresh_token)
    with pytest.raises(TokenError, match="ended"):
        sessions.refresh(db, third.refresh_token)
    with pytest.raises(TokenError, match="ended"):
        sessions.principal_from_token(db, third.access_token)
    other = sessions.login(db, "ann@example.com", PASSWORD)  # another session is untouched
    assert sessions.principal_from_token(db, other.access_token).name == "ann@example.com"
    assert "auth.refresh.reuse" in _actions(db)
    with pytest.raises(TokenError, match="unknown"):
        sessions.refresh(db, "klr_made-up")


def test_logout_revokes_at_once(db) -> None:
    _user(db)
    result = sessions.login(db, "ann@example.com", PASSWORD)
    assert sessions.logout(db, result.principal, session_id=result.session_id) is True
    with pytest.raises(TokenError):
        sessions.principal_from_token(db, result.access_token)
    with pytest.raises(TokenError):
        sessions.refresh(db, result.refresh_token)
    assert _actions(db)[-1] == "auth.logout"


def test_an_idle_session_times_out_and_activity_keeps_it_open(db) -> None:
    made = _user(db)
    result = sessions.login(db, "ann@example.com", PASSWORD)
    timeout = sessions.session_timeout()
    assert timeout == timedelta(minutes=60)  # KLAXON_SESSION_MINUTES' default

    def deadline() -> datetime:
        with db.read() as conn:
            return conn.execute(
                select(RefreshToken.expires_at).where(RefreshToken.family == result.session_id)
            ).scalar_one()

    def set_deadline(value: datetime) -> None:
        with db.connect() as conn:
            conn.execute(update(RefreshToken).values(expires_at=value))

    # Almost idle for too long: a request counts as activity and moves the deadline.
    set_deadline(datetime.now(UTC) + timedelta(seconds=5))
    sessions.principal_for_user(db, made["id"], result.session_id)
    assert deadline() > datetime.now(UTC) + timeout - timedelta(minutes=2)
    # Idle past the deadline: the web app's session and the API's access token both end.
    set_deadline(datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(TokenError, match="timed out after 60 minutes"):
        sessions.principal_for_user(db, made["id"], result.session_id)
    with pytest.raises(TokenError, match="timed out"):
        sessions.principal_from_token(db, result.access_token)
    with pytest.raises(TokenError, match="expired"):
        sessions.refresh(db, result.refresh_token)


def test_users_end_only_their_own_sessions(db) -> None:
    _user(db)
    _user(db, email="bob@example.com")
    ann = sessions.login(db, "ann@example.com", PASSWORD)
    bob = sessions.login(db, "bob@example.com", PASSWORD)
    with pytest.raises(TokenError, match="unknown session"):
        sessions.logout(db, bob.principal, session_id=ann.session_id)
    with pytest.raises(TokenError, match="unknown refresh token"):
        sessions.logout(db, bob.principal, refresh_token=ann.refresh_token)
    assert sessions.principal_from_token(db, ann.access_token).name == "ann@example.com"
    assert sessions.logout(db, SYSTEM, session_id=ann.session_id) is True  # an admin may
    with pytest.raises(TokenError, match="ended"):
        sessions.principal_from_token(db, ann.access_token)


def test_expired_forged_and_foreign_tokens_are_refused(db) -> None:
    made = _user(db)
    result = sessions.login(db, "ann@example.com", PASSWORD)
    old = sessions.issue_access_token(
        made["id"], result.session_id, datetime.now(UTC) - timedelta(minutes=16)
    )
    with pytest.raises(TokenError, match="expired"):
        sessions.principal_from_token(db, old)
    head, body, sig = result.access_token.split(".")
    with pytest.raises(TokenError, match="not valid"):
        sessions.principal_from_token(db, f"{head}.{body}.{sig[::-1]}")
    import jwt

    unsigned = jwt.encode(
        {"sub": str(made["id"]), "sid": result.session_id}, key=None, algorithm="none"
    )
    with pytest.raises(TokenError):
        sessions.principal_from_token(db, unsigned)
    other_key = jwt.encode(
        {
            "iss": "klaxon",
            "sub": str(made["id"]),
            "sid": result.session_id,
            "typ": "access",
            "iat": 0,
            "exp": 2**40,
        },
        "another-key-entirely-32-bytes-long!",
        algorithm="HS256",
    )
    with pytest.raises(TokenError):
        sessions.principal_from_token(db, other_key)
    with db.connect() as conn:
        conn.execute(
            update(RefreshToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(TokenError, match="expired"):
        sessions.refresh(db, result.refresh_token)


def test_role_changes_and_deactivation_take_effect_at_once(db) -> None:
    made = _user(db)
    result = sessions.login(db, "ann@example.com", PASSWORD)
    users.update_user(db, SYSTEM, made["id"], role="viewer")
    assert sessions.principal_from_token(db, result.access_token).role == "viewer"
    users.update_user(db, SYSTEM, made["id"], is_active=False)
    with pytest.raises(TokenError):
        sessions.principal_from_token(db, result.access_token)
    with pytest.raises(LoginError):
        sessions.login(db, "ann@example.com", PASSWORD)


def _enrol(db, email="ann@example.com") -> tuple[str, list[str]]:
    principal = sessions.login(db, email, PASSWORD).principal
    secret = mfa.setup(db, principal)["secret"]
    codes = mfa.enable(db, principal, pyotp.TOTP(secret).now())
    return secret, codes


def test_totp_login_with_replay_protection_and_backup_codes(db) -> None:
    _user(db)
    secret, codes = _enrol(db)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    with pytest.raises(MfaRequiredError):
        sessions.login(db, "ann@example.com", PASSWORD)
    with pytest.raises(MfaInvalidError):
        sessions.login(db, "ann@example.com", PASSWORD, totp="000000")
    # The code enable() used is spent; the next step's code works once.
    next_code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    assert (
        sessions.login(db, "ann@example.com", PASSWORD, totp=next_code).principal.name
        == "ann@example.com"
    )
    with pytest.raises(MfaInvalidError):
        sessions.login(db, "ann@example.com", PASSWORD, totp=next_code)
    assert sessions.login(db, "ann@example.com", PASSWORD, totp=codes[0].upper()).access_token
    with pytest.raises(MfaInvalidError):
        sessions.login(db, "ann@example.com", PASSWORD, totp=codes[0])
    with db.read() as conn:
        user = conn.execute(select(User).where(User.email == "ann@example.com")).one()
    assert len(user.backup_codes) == 9
    assert codes[1] not in str(user.backup_codes)
    assert secret not in (user.mfa_secret_encrypted or "")
    actions = _actions(db)
    assert "mfa.enable" in actions
    assert "mfa.backup_code_used" in actions


def test_enforcement_by_team_and_by_role(db) -> None:
    made = _user(db)
    teams.create_team(db, SYSTEM, name="sre", require_mfa=True, members=["ann@example.com"])
    result = sessions.login(db, "ann@example.com", PASSWORD)
    assert result.mfa_setup_required
    assert result.principal.mfa_pending
    with pytest.raises(PermissionDenied, match="enable MFA first"):
        result.principal.require("alerts.read")
    secret = mfa.setup(db, result.principal)["secret"]
    mfa.enable(db, result.principal, pyotp.TOTP(secret).now())
    assert not sessions.principal_from_token(db, result.access_token).mfa_pending
    with pytest.raises(ConflictError, match="required"):
        mfa.disable(
            db,
            sessions.principal_from_token(db, result.access_token),
            made["id"],
            password=PASSWORD,
        )

    _user(db, email="bea@example.com", role="viewer")
    assert not sessions.login(db, "bea@example.com", PASSWORD).mfa_setup_required
    with pytest.raises(PermissionDenied):
        mfa.set_required_roles(
            db, sessions.login(db, "bea@example.com", PASSWORD).principal, ["viewer"]
        )
    assert mfa.set_required_roles(db, SYSTEM, ["viewer", "admin"]) == ["admin", "viewer"]
    assert sessions.login(db, "bea@example.com", PASSWORD).mfa_setup_required
    assert "setting.update" in _actions(db)


def test_an_admin_resets_a_lost_phone(db) -> None:
    made = _user(db)
    _enrol(db)
    mfa.disable(db, SYSTEM, made["id"])
    assert sessions.login(db, "ann@example.com", PASSWORD).access_token
    assert _actions(db).count("mfa.disable") == 1
