"""Every mutation made through the API leaves an audit entry with who, from where, what, and
before/after; the chain still verifies at the end."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.auth import audit
from engine.auth.demo import create_demo_users
from engine.store.models import AuditEntry
from engine.worker import Worker

PASSWORD = "plenty-long-passphrase-42"


@pytest.fixture
def admin(api, db):
    create_demo_users(db, password=PASSWORD)
    client = TestClient(api.app, headers={"User-Agent": "audit-test/1"})
    r = client.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client


def _entries(db, after_id: int) -> list[AuditEntry]:
    with db.read() as conn:
        return list(
            conn.execute(select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id))
        )


def _last_id(db) -> int:
    with db.read() as conn:
        return (
            conn.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc())).scalars().first()
            or 0
        )


def test_every_mutation_is_audited(api, admin, db, settings) -> None:
    assert (
        api.post("/api/v1/alerts", json={"title": "disk full", "service": "db"}).status_code == 202
    )
    while Worker(db, settings).step():
        pass
    alert_id = admin.get("/api/v1/alerts").json()["items"][0]["id"]
    steps = [
        ("post", f"/api/v1/alerts/{alert_id}/acknowledge", {"note": "on it"}, "alert.acknowledge"),
        ("post", f"/api/v1/alerts/{alert_id}/notes", {"note": "disk at 99%"}, "alert.note"),
        (
            "post",
            f"/api/v1/alerts/{alert_id}/assign",
            {"assignee": "operator@example.com"},
            "alert.assign",
        ),
        ("post", f"/api/v1/alerts/{alert_id}/escalate", None, "alert.escalate"),
        ("post", f"/api/v1/alerts/{alert_id}/investigate", None, "alert.investigate"),
        ("post", f"/api/v1/alerts/{alert_id}/resolve", {"reason": "fixed"}, "alert.resolve"),
        (
            "put",
            "/api/v1/rules",
            {"text": 'rule only_db\n  when service == "db"\nend\n'},
            "rules.update",
        ),
        ("post", "/api/v1/silences", {"matcher": 'service == "web"'}, "silence.create"),
        ("post", "/api/v1/silences/1/expire", None, "silence.expire"),
        (
            "post",
            "/api/v1/users",
            {"email": "new@example.com", "role": "viewer", "password": PASSWORD},
            "user.create",
        ),
        ("patch", "/api/v1/users/5", {"role": "operator"}, "user.role"),
        ("patch", "/api/v1/users/5", {"name": "New Person"}, "user.update"),
        ("post", "/api/v1/users/5/password", {"password": "a-new-passphrase-99"}, "user.password"),
        ("post", "/api/v1/users/5/unlock", None, "user.unlock"),
        ("post", "/api/v1/users/5/mfa/reset", None, "mfa.disable"),
        ("post", "/api/v1/teams", {"name": "db", "members": ["new@example.com"]}, "team.create"),
        ("patch", "/api/v1/teams/1", {"require_mfa": True}, "team.update"),
        ("delete", "/api/v1/teams/1", None, "team.delete"),
        ("post", "/api/v1/users/5/erase", None, "privacy.erase"),
        (
            "post",
            "/api/v1/channels",
            {"name": "sre_chat", "url": "json://127.0.0.1/x"},
            "channel.create",
        ),
        ("patch", "/api/v1/channels/sre_chat", {"description": "SRE room"}, "channel.update"),
        ("delete", "/api/v1/channels/sre_chat", None, "channel.delete"),
        ("post", "/api/v1/keys", {"name": "grafana", "scopes": ["ingest"]}, "apikey.create"),
        ("delete", "/api/v1/keys/2", None, "apikey.revoke"),
        # Requiring MFA of admins leaves this admin only enrolment and logout.
        ("put", "/api/v1/auth/mfa/policy", {"roles": ["admin"]}, "setting.update"),
        ("post", "/api/v1/auth/mfa/setup", None, "mfa.setup"),
        ("post", "/api/v1/auth/logout", None, "auth.logout"),
    ]
    for method, path, body, action in steps:
        before = _last_id(db)
        kwargs = {"json": body} if body is not None else {}
        r = getattr(admin, method)(path, **kwargs)
        assert r.status_code < 300, (path, r.status_code, r.text)
        entries = _entries(db, before)
        assert action in [e.action for e in entries], (path, [e.action for e in entries])
        entry = next(e for e in entries if e.action == action)
        assert entry.actor == "admin@example.com", (path, entry.actor)
        assert entry.ip == "testclient"
        assert entry.user_agent == "audit-test/1"
        if action.startswith("alert."):
            assert entry.before is not None
            assert entry.after is not None
            assert entry.resource == "alert"
            assert entry.resource_id == str(alert_id)
    role_change = next(e for e in _entries(db, 0) if e.action == "user.role")
    assert (role_change.before["role"], role_change.after["role"]) == ("viewer", "operator")
    assert audit.verify(db).ok
