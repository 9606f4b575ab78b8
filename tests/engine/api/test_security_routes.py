"""Every route of the app: nothing answers without credentials except health and the login
itself; each role gets exactly what its permissions allow; every refusal is audited.

/metrics takes a key with the `read` scope (Prometheus sends it as a bearer token) and carries
only counts by route template, status and severity, never an alert's content or a person.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.auth.demo import create_demo_users
from engine.auth.keys import create_key
from engine.auth.principal import ROLE_PERMISSIONS, ROLES
from engine.store.models import AuditEntry

PASSWORD = "plenty-long-passphrase-42"
OPEN = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("POST", "/api/v1/auth/login"),  # the credentials are the body
    ("POST", "/api/v1/auth/refresh"),  # the refresh token is the body
}
# Schema documents, outside the OpenAPI paths: they describe the API and hold no data.
DOCS = {"/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"}
STREAMS = ("/api/v1/stream",)  # endless responses: only ever requested where refused


def _url(path: str) -> str:
    return re.sub(r"\{source\}", "prometheus", re.sub(r"\{[a-z_]+\}", "999999", path))


def _permission(dependant: Any) -> str | None:
    """The permission a route's `permission(...)` dependency requires (None: any caller)."""
    for dep in dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("requires_"):
            return name.removeprefix("requires_").replace("_", ".", 1)
        found = _permission(dep)
        if found:
            return found
    return None


def _api_routes(app: Any) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, through included routers (FastAPI 0.165)."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            out.append((str(ctx.path), route))
    return out


def _routes(app: Any) -> list[tuple[str, str, str | None]]:
    out = []
    for path, route in _api_routes(app):
        out += [(method, path, _permission(route.dependant)) for method in sorted(route.methods)]
    return sorted(out)


def _denials(db) -> int:
    with db.read() as conn:
        return conn.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "access.denied")
        ).scalar_one()


def _tokens(api, db) -> dict[str, str]:
    create_demo_users(db, password=PASSWORD)
    out = {}
    for role in ROLES:
        r = api.post(
            "/api/v1/auth/login", json={"email": f"{role}@example.com", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        out[role] = r.json()["access_token"]
    return out


def test_the_openapi_paths_are_every_route(api) -> None:
    from_schema = {(m.upper(), p) for p, ops in api.app.openapi()["paths"].items() for m in ops}
    assert from_schema == {(m, p) for m, p, _ in _routes(api.app)}
    every = {str(ctx.path) for ctx in iter_route_contexts(api.app.routes)}
    assert every - {p for p, _ in _api_routes(api.app)} <= DOCS


def test_no_route_answers_without_credentials(api, db) -> None:
    bare = TestClient(api.app)
    refused = 0
    for path, ops in api.app.openapi()["paths"].items():
        for method in ops:
            method = method.upper()
            r = bare.request(method, _url(path))
            if (method, path) in OPEN:
                assert r.status_code != 401, (method, path)
                continue
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            body = r.json()
            assert body["ok"] is False
            assert body["status"] == 401
            assert r.headers["www-authenticate"] == "Bearer"
            refused += 1
    assert refused > 40
    assert _denials(db) == refused  # every refusal is in the audit log


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer klx_not-a-key",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer klr_refresh-token-is-not-access",
        "bearer " + "A" * 5000,
    ],
)
def test_bad_credentials_are_401(api, header) -> None:
    r = api.get("/api/v1/alerts", headers={"Authorization": header})
    assert r.status_code == 401


def test_each_role_gets_exactly_its_permissions(api, db) -> None:
    tokens = _tokens(api, db)
    before = _denials(db)
    refused = 0
    checked: dict[str, set[str]] = {role: set() for role in ROLES}
    for method, path, needed in _routes(api.app):
        if (method, path) in OPEN:
            continue
        for role in ROLES:
            allowed = needed is None or needed in ROLE_PERMISSIONS[role]
            if allowed and (method != "GET" or path.startswith(STREAMS)):
                continue  # writes that are allowed are exercised by the functional tests
            r = api.request(method, _url(path), headers={"Authorization": f"Bearer {tokens[role]}"})
            if allowed:
                assert r.status_code not in (401, 403), (role, method, path, r.text)
                assert r.status_code < 500, (role, method, path, r.text)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code, r.text)
                assert r.json()["permission"] == needed
                refused += 1
            checked[role].add(f"{method} {path}")
    assert _denials(db) - before == refused
    # The two sentences, by name:
    viewer_writes = [p for p in checked["viewer"] if not p.startswith("GET") and "/auth/" not in p]
    assert len(viewer_writes) > 15  # a viewer was refused every write
    assert {
        "POST /api/v1/users",
        "PATCH /api/v1/users/{user_id}",
        "POST /api/v1/users/{user_id}/erase",
    } <= checked["operator"]


def test_a_viewer_reads_but_cannot_write(api, db) -> None:
    token = _tokens(api, db)["viewer"]
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/alerts", headers=auth).status_code == 200
    assert api.get("/api/v1/teams", headers=auth).status_code == 200
    r = api.post("/api/v1/silences", json={"matcher": 'service == "db"'}, headers=auth)
    assert r.status_code == 403
    assert r.json()["permission"] == "silences.write"
    r = api.put("/api/v1/rules", json={"text": ""}, headers=auth)
    assert r.status_code == 403


def test_an_operator_cannot_manage_users(api, db) -> None:
    token = _tokens(api, db)["operator"]
    auth = {"Authorization": f"Bearer {token}"}
    body = {"email": "new@example.com", "role": "admin", "password": PASSWORD}
    r = api.post("/api/v1/users", json=body, headers=auth)
    assert r.status_code == 403
    assert r.json()["permission"] == "users.write"
    assert api.get("/api/v1/users", headers=auth).status_code == 403
    # The admin can, and the user appears.
    admin = {"Authorization": f"Bearer {_tokens(api, db)['admin']}"}
    r = api.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert "new@example.com" in [u["email"] for u in api.get("/api/v1/users", headers=admin).json()]
    with db.read() as conn:
        last = conn.execute(
            select(AuditEntry)
            .where(AuditEntry.action == "access.denied")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert last.actor == "operator@example.com"
    assert last.after["permission"] == "users.read"
    assert last.after["path"] == "/api/v1/users"
    assert last.ip == "testclient"


@pytest.mark.parametrize(
    ("scopes", "path", "status"),
    [
        (["read"], "/api/v1/alerts", 200),
        (["ingest"], "/api/v1/alerts", 403),
        (["read"], "/api/v1/users", 403),
    ],
)
def test_api_keys_keep_working_by_scope(api, db, scopes, path, status) -> None:
    key = create_key(db, name=f"k-{'-'.join(scopes)}", scopes=scopes)
    r = api.get(path, headers={"Authorization": f"Bearer {key.token}"})
    assert r.status_code == status


def test_metrics_take_a_read_key_and_carry_no_personal_data(api, db) -> None:
    create_demo_users(db, password=PASSWORD)
    api.post("/api/v1/alerts", json={"title": "secret-title-xyz", "service": "billing"})
    api.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
    assert TestClient(api.app).get("/metrics").status_code == 401
    scraper = create_key(db, name="prometheus", scopes=["read"])
    ingest_only = create_key(db, name="ingest-only", scopes=["ingest"])
    denied = TestClient(api.app).get(
        "/metrics", headers={"Authorization": f"Bearer {ingest_only.token}"}
    )
    assert denied.status_code == 403
    answer = TestClient(api.app).get(
        "/metrics", headers={"Authorization": f"Bearer {scraper.token}"}
    )
    assert answer.status_code == 200
    text = answer.text
    assert "klaxon_http_requests_total" in text
    for private in ("secret-title-xyz", "billing", "admin@example.com", "testclient", PASSWORD):
        assert private not in text
