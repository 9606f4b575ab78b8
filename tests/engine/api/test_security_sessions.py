"""Sessions over HTTP: login, refresh rotation and reuse, logout, expired and revoked tokens,
brute force slowed then locked, MFA; and the users, teams and audit endpoints' answers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from engine.auth import sessions, users
from engine.auth.demo import create_demo_users
from engine.store.models import AuditEntry, User

PASSWORD = "plenty-long-passphrase-42"


@pytest.fixture
def web(api, db):
    """A client without the API key, and the demo users of every role."""
    create_demo_users(db, password=PASSWORD)
    return TestClient(api.app)


def _login(web, role="operator", **extra):
    return web.post(
        "/api/v1/auth/login", json={"email": f"{role}@example.com", "password": PASSWORD, **extra}
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_me_refresh_logout(web) -> None:
    r = _login(web)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = web.get("/api/v1/auth/me", headers=_bearer(tokens["access_token"])).json()
    assert me["name"] == "operator@example.com"
    assert "alerts.write" in me["permissions"]
    assert web.get("/api/v1/alerts", headers=_bearer(tokens["access_token"])).status_code == 200

    r = web.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    fresh = r.json()
    # Reusing the rotated token revokes the session, fresh tokens included.
    r = web.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
    assert "already used" in r.json()["error"]
    assert web.get("/api/v1/alerts", headers=_bearer(fresh["access_token"])).status_code == 401
    assert (
        web.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code
        == 401
    )

    again = _login(web).json()
    r = web.post("/api/v1/auth/logout", headers=_bearer(again["access_token"]))
    assert r.status_code == 200
    assert r.json()["ended"] is True
    assert web.get("/api/v1/alerts", headers=_bearer(again["access_token"])).status_code == 401
    assert (
        web.post("/api/v1/auth/refresh", json={"refresh_token": again["refresh_token"]}).status_code
        == 401
    )


def test_expired_and_revoked_tokens_are_refused_and_audited(web, db) -> None:
    result = sessions.login(db, "viewer@example.com", PASSWORD)
    old = sessions.issue_access_token(
        result.principal.user_id,
        result.session_id,
        datetime.now(UTC) - timedelta(minutes=15, seconds=1),
    )
    r = web.get("/api/v1/alerts", headers=_bearer(old))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    with db.read() as conn:
        last = conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert last.action == "access.denied"
    assert "expired" in last.after["reason"]
    sessions.logout(db, result.principal, session_id=result.session_id)
    assert web.get("/api/v1/alerts", headers=_bearer(result.access_token)).status_code == 401


def test_brute_force_over_http_is_slowed_then_locked(web, db) -> None:
    statuses = []
    for _ in range(3 * users.LOCK_AFTER):
        r = web.post(
            "/api/v1/auth/login",
            json={"email": "viewer@example.com", "password": "guess-password-000"},
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["retry_after"] >= 1
            with db.connect() as conn:
                count = conn.execute(
                    select(User.failed_logins).where(User.email == "viewer@example.com")
                ).scalar_one()
                if count >= users.LOCK_AFTER:
                    break
                conn.execute(
                    update(User).where(User.email == "viewer@example.com").values(locked_until=None)
                )
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    assert statuses.count(401) == users.LOCK_AFTER
    r = _login(web, "viewer")  # the right password, too late
    assert r.status_code == 429
    assert "locked" in r.json()["error"]
    assert int(r.headers["retry-after"]) > 60
    with db.read() as conn:
        actions = conn.execute(select(AuditEntry.action)).scalars().all()
    assert actions.count("auth.lockout") == 1
    assert actions.count("auth.login.failed") == users.LOCK_AFTER
    admin = _login(web, "admin").json()["access_token"]
    user_id = web.get("/api/v1/users", params={"q": "viewer@"}, headers=_bearer(admin)).json()[0][
        "id"
    ]
    assert web.post(f"/api/v1/users/{user_id}/unlock", headers=_bearer(admin)).status_code == 200
    assert _login(web, "viewer").status_code == 200


def test_wrong_password_and_unknown_email_look_the_same(web) -> None:
    a = web.post(
        "/api/v1/auth/login", json={"email": "viewer@example.com", "password": "nope-nope-nope"}
    )
    b = web.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope-nope-nope"}
    )
    assert a.status_code == b.status_code == 401
    assert a.json()["error"] == b.json()["error"] == "wrong email or password"


def test_mfa_enrol_then_login_needs_the_code(web) -> None:
    token = _login(web).json()["access_token"]
    setup = web.post("/api/v1/auth/mfa/setup", headers=_bearer(token)).json()
    assert setup["uri"].startswith("otpauth://totp/Klaxon:operator%40example.com")
    r = web.post("/api/v1/auth/mfa/enable", json={"totp": "123456"}, headers=_bearer(token))
    assert r.status_code == 401
    assert r.json()["field"] == "totp"
    r = web.post(
        "/api/v1/auth/mfa/enable",
        json={"totp": pyotp.TOTP(setup["secret"]).now()},
        headers=_bearer(token),
    )
    codes = r.json()["backup_codes"]
    assert r.status_code == 200
    assert len(codes) == 10
    r = _login(web)
    assert r.status_code == 401
    assert r.json()["mfa_required"] is True
    assert r.json()["field"] == "totp"
    assert _login(web, totp=codes[3]).status_code == 200
    assert _login(web, totp=codes[3]).status_code == 401
    assert web.get("/api/v1/auth/mfa", headers=_bearer(token)).json()["backup_codes_left"] == 9


def test_mfa_required_by_role_blocks_everything_but_enrolment(web) -> None:
    admin = _bearer(_login(web, "admin").json()["access_token"])
    assert web.put(
        "/api/v1/auth/mfa/policy", json={"roles": ["manager"]}, headers=admin
    ).json() == {"roles": ["manager"]}
    r = web.put("/api/v1/auth/mfa/policy", json={"roles": ["root"]}, headers=admin)
    assert r.status_code == 422
    assert r.json()["field"] == "roles"
    r = _login(web, "manager")
    assert r.json()["mfa_setup_required"] is True
    manager = _bearer(r.json()["access_token"])
    r = web.get("/api/v1/alerts", headers=manager)
    assert r.status_code == 403
    assert "enable MFA first" in r.json()["error"]
    assert web.get("/api/v1/auth/me", headers=manager).json()["mfa_pending"] is True
    assert web.post("/api/v1/auth/mfa/setup", headers=manager).status_code == 200


def test_change_my_password(web) -> None:
    tokens = _login(web).json()
    auth = _bearer(tokens["access_token"])
    r = web.post(
        "/api/v1/auth/password",
        json={"current_password": "wrong-wrong-wrong", "new_password": "another-passphrase-77"},
        headers=auth,
    )
    assert r.status_code == 422
    assert r.json()["field"] == "current_password"
    r = web.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=auth,
    )
    assert r.status_code == 422
    assert r.json()["field"] == "password"
    r = web.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another-passphrase-77"},
        headers=auth,
    )
    assert r.status_code == 200
    assert web.get("/api/v1/auth/me", headers=auth).status_code == 401  # every session ended
    assert (
        web.post(
            "/api/v1/auth/login",
            json={"email": "operator@example.com", "password": "another-passphrase-77"},
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"email": "x", "role": "viewer", "password": PASSWORD}, 422, "email"),
        ({"email": "n@example.com", "role": "root", "password": PASSWORD}, 422, "role"),
        ({"email": "n@example.com", "role": "viewer", "password": "short"}, 422, "password"),
        (
            {"email": "n@example.com", "role": "viewer", "password": PASSWORD, "teams": ["x"]},
            422,
            "teams",
        ),
        ({"email": "viewer@example.com", "role": "viewer", "password": PASSWORD}, 409, "email"),
        ({"role": "viewer", "password": PASSWORD}, 422, "email"),
    ],
)
def test_user_creation_refusals_name_the_field(web, body, status, field) -> None:
    admin = _bearer(_login(web, "admin").json()["access_token"])
    r = web.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert r.json()["ok"] is False
    assert len(web.get("/api/v1/users", headers=admin).json()) == 4


def test_users_and_teams_endpoints(web) -> None:
    admin = _bearer(_login(web, "admin").json()["access_token"])
    r = web.post(
        "/api/v1/teams", json={"name": "sre", "members": ["operator@example.com"]}, headers=admin
    )
    assert r.status_code == 201
    team_id = r.json()["id"]
    assert web.post("/api/v1/teams", json={"name": "sre"}, headers=admin).status_code == 409
    r = web.patch(f"/api/v1/teams/{team_id}", json={"require_mfa": True}, headers=admin)
    assert r.json()["require_mfa"] is True
    listed = web.get("/api/v1/users", params={"team": "sre"}, headers=admin).json()
    assert [u["email"] for u in listed] == ["operator@example.com"]
    r = web.patch(f"/api/v1/users/{listed[0]['id']}", json={"role": "viewer"}, headers=admin)
    assert r.json()["role"] == "viewer"
    assert web.get("/api/v1/users/999999", headers=admin).status_code == 404
    assert web.get("/api/v1/users/0", headers=admin).status_code == 422
    assert (
        web.get("/api/v1/users", params={"sort": "password_hash"}, headers=admin).json()["field"]
        == "sort"
    )
    assert web.delete(f"/api/v1/teams/{team_id}", headers=admin).status_code == 200


def test_audit_endpoints_search_export_verify(web, db) -> None:
    manager = _bearer(_login(web, "manager").json()["access_token"])
    web.get("/api/v1/users/1/export", headers=manager)  # refused: audited
    rows = web.get(
        "/api/v1/audit", params={"action": "auth.*", "order": "asc"}, headers=manager
    ).json()
    assert [e["action"] for e in rows] == ["auth.login"]
    denied = web.get("/api/v1/audit", params={"action": "access.denied"}, headers=manager).json()
    assert denied[0]["after"]["permission"] == "users.write"
    r = web.get("/api/v1/audit/export", params={"format": "csv"}, headers=manager)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    r = web.get("/api/v1/audit/export", params={"format": "json"}, headers=manager)
    assert [e["id"] for e in orjson.loads(r.content)] == [int(row["id"]) for row in table]
    assert (
        web.get("/api/v1/audit/export", params={"format": "xml"}, headers=manager).json()["field"]
        == "format"
    )
    assert web.get("/api/v1/audit/verify", headers=manager).json()["ok"] is True
    with db.connect() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == 2).values(actor="nobody"))
    result = web.get("/api/v1/audit/verify", headers=manager).json()
    assert result["ok"] is False
    assert result["broken_id"] == 2
    operator = _bearer(_login(web, "operator").json()["access_token"])
    assert web.get("/api/v1/audit", headers=operator).status_code == 403


def test_erase_over_http_keeps_the_chain(web, db) -> None:
    admin = _bearer(_login(web, "admin").json()["access_token"])
    _login(web, "viewer")
    viewer_id = web.get("/api/v1/users", params={"role": "viewer"}, headers=admin).json()[0]["id"]
    exported = web.get(f"/api/v1/users/{viewer_id}/export", headers=admin).json()
    assert exported["user"]["email"] == "viewer@example.com"
    r = web.post(f"/api/v1/users/{viewer_id}/erase", headers=admin)
    assert r.status_code == 200
    assert r.json()["pseudonym"] == f"erased-user-{viewer_id}"
    assert web.post(f"/api/v1/users/{viewer_id}/erase", headers=admin).status_code == 409
    assert web.get("/api/v1/audit/verify", headers=admin).json()["ok"] is True
    assert "viewer@example.com" not in web.get("/api/v1/audit/export", headers=admin).text


def test_one_address_trying_many_accounts_is_slowed(web, api) -> None:
    from engine.api.auth import LoginThrottle

    api.app.state.login_throttle = LoginThrottle(rate=5)
    statuses = [
        web.post(
            "/api/v1/auth/login",
            json={"email": f"user{i}@example.com", "password": "spray-password-1"},
        ).status_code
        for i in range(7)
    ]
    assert statuses == [401] * 5 + [429, 429]
    r = web.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1


def test_the_throttle_refills_and_keeps_addresses_apart() -> None:
    from engine.api.auth import LoginThrottle

    throttle = LoginThrottle(rate=60)
    assert all(throttle.take("10.0.0.1") == 0 for _ in range(60))
    assert throttle.take("10.0.0.1") == 1
    assert throttle.take("10.0.0.2") == 0
