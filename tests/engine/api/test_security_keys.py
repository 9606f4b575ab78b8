"""API keys over HTTP: made by people who may, never stronger than their maker, scoped, and
refused the moment they are revoked; every step audited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.auth import audit
from engine.auth.demo import create_demo_users
from engine.auth.principal import ROLE_PERMISSIONS
from engine.store.models import AuditEntry

PASSWORD = "plenty-long-passphrase-42"


@pytest.fixture
def as_role(api, db):
    create_demo_users(db, password=PASSWORD)
    clients: dict[str, TestClient] = {}

    def client(role: str) -> TestClient:
        if role not in clients:
            c = TestClient(api.app)
            r = c.post(
                "/api/v1/auth/login", json={"email": f"{role}@example.com", "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            clients[role] = c
        return clients[role]

    return client


def test_create_use_list_and_revoke_a_key(api, db, as_role) -> None:
    admin = as_role("admin")
    r = admin.post("/api/v1/keys", json={"name": "grafana-prod", "scopes": ["read"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith("klx_")
    assert made["hmac_secret"] is None
    key = TestClient(api.app, headers={"Authorization": f"Bearer {made['token']}"})
    assert key.get("/api/v1/alerts").status_code == 200
    r = key.post("/api/v1/silences", json={"matcher": 'service == "db"'})
    assert r.status_code == 403
    assert r.json()["permission"] == "silences.write"

    listed = admin.get("/api/v1/keys").json()
    mine = next(k for k in listed if k["id"] == made["id"])
    assert mine["name"] == "grafana-prod"
    assert mine["scopes"] == ["read"]
    assert made["token"] not in str(listed)  # only the prefix is ever shown again
    assert mine["prefix"] == made["token"][:12]

    assert admin.delete(f"/api/v1/keys/{made['id']}").status_code == 200
    r = key.get("/api/v1/alerts")
    assert r.status_code == 401  # at once, not when the cache ages out
    r = admin.delete(f"/api/v1/keys/{made['id']}")
    assert r.status_code == 404
    assert r.json()["field"] == "key_id"

    with db.read() as conn:
        entries = conn.execute(
            select(AuditEntry)
            .where(AuditEntry.resource == "api_key", AuditEntry.resource_id == str(made["id"]))
            .order_by(AuditEntry.id)
        ).all()
    assert [(e.action, e.actor, e.resource_id) for e in entries] == [
        ("apikey.create", "admin@example.com", str(made["id"])),
        ("apikey.revoke", "admin@example.com", str(made["id"])),
    ]
    assert entries[0].after == {"name": "grafana-prod", "scopes": ["read"], "hmac": False}
    assert audit.verify(db).ok


def test_a_key_is_never_stronger_than_its_maker(as_role) -> None:
    manager = as_role("manager")
    r = manager.post("/api/v1/keys", json={"name": "sneaky", "scopes": ["admin"]})
    assert r.status_code == 403
    assert r.json()["permission"] not in ROLE_PERMISSIONS["manager"]
    r = manager.post("/api/v1/keys", json={"name": "pusher", "scopes": ["ingest"]})
    assert r.status_code == 403  # managers do not ingest: neither do their keys
    assert r.json()["permission"] == "events.ingest"
    r = manager.post("/api/v1/keys", json={"name": "dashboards", "scopes": ["read", "write"]})
    assert r.status_code == 201, r.text
    assert as_role("operator").get("/api/v1/keys").status_code == 200
    r = as_role("operator").post("/api/v1/keys", json={"name": "x", "scopes": ["read"]})
    assert r.status_code == 403
    assert r.json()["permission"] == "integrations.write"
    assert as_role("viewer").get("/api/v1/keys").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": " ", "scopes": ["read"]}, "name"),
        ({"name": "has space", "scopes": ["read"]}, "name"),
        ({"name": "ok", "scopes": []}, "scopes"),
        ({"name": "ok", "scopes": ["root"]}, "scopes"),
        ({"name": "ok", "scopes": ["read"], "rate_limit": 0}, "rate_limit"),
    ],
)
def test_bad_key_requests_name_the_field(as_role, body, field) -> None:
    r = as_role("admin").post("/api/v1/keys", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["ok"] is False
    assert r.json()["field"] == field
    assert "ok" not in [k["name"] for k in as_role("admin").get("/api/v1/keys").json()]
