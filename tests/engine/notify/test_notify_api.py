"""The notification API: escalation policies, the deliveries list, and what each change audits."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.auth.keys import create_key
from engine.store.models import AuditEntry

RULES = 'rule source "{{ title }}"\n  when kind == "alert"\n  notify hook\nend\n'


def test_escalation_policies_round_trip_and_are_audited(api, db, people) -> None:
    people.user("ann@example.com")
    api.post("/api/v1/channels", json={"name": "sre_chat", "url": "json://127.0.0.1/x"})
    levels = [
        {"delay_s": 600, "targets": ["user:ann@example.com"]},
        {"delay_s": 1800, "targets": ["sre_chat"]},
    ]
    r = api.post(
        "/api/v1/escalation-policies", json={"name": "sre", "levels": levels, "description": "SRE"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["levels"] == [
        {"delay_s": 600.0, "targets": ["user:ann@example.com"]},
        {"delay_s": 1800.0, "targets": ["sre_chat"]},
    ]
    assert [p["name"] for p in api.get("/api/v1/escalation-policies").json()] == ["sre"]
    r = api.put("/api/v1/escalation-policies/sre", json={"levels": levels[:1]})
    assert r.status_code == 200
    assert len(r.json()["levels"]) == 1
    assert api.delete("/api/v1/escalation-policies/sre").status_code == 200
    assert api.get("/api/v1/escalation-policies/sre").status_code == 404
    with db.read() as conn:
        actions = [a for (a,) in conn.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
    assert [a for a in actions if a.startswith("escalation_policy.")] == [
        "escalation_policy.create",
        "escalation_policy.update",
        "escalation_policy.delete",
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # checks made before the store
@pytest.mark.parametrize(
    ("levels", "field"),
    [
        ([], "levels"),
        ([{"delay_s": 0, "targets": ["sre_chat"]}], "levels[0].delay_s"),
        (
            [{"delay_s": 600, "targets": ["sre_chat"]}, {"delay_s": 300, "targets": ["sre_chat"]}],
            "levels[1].delay_s",
        ),
        ([{"delay_s": 600, "targets": []}], "levels[0].targets"),
        ([{"delay_s": 600, "targets": ["sre_chat", "oncall:ghosts"]}], "levels[0].targets[1]"),
        ([{"delay_s": 600, "targets": ["nobody_here"]}], "levels[0].targets[0]"),
        (["600s"], "levels[0]"),
    ],
)
def test_bad_policies_are_422_naming_the_field(api, levels, field) -> None:
    api.post("/api/v1/channels", json={"name": "sre_chat", "url": "json://127.0.0.1/x"})
    r = api.post("/api/v1/escalation-policies", json={"name": "sre", "levels": levels})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert api.get("/api/v1/escalation-policies").json() == []


def test_the_deliveries_list_filters_and_pages(make_pipeline, api) -> None:
    p = make_pipeline(RULES)
    p.add_channel("hook", "json://127.0.0.1:9/down", grouping={"interval_s": 0})
    for i in range(5):
        p.fire(f"alert {i}")
    p.deliver()
    page = api.get("/api/v1/notifications", params={"limit": 2, "status": "failed"}).json()
    assert len(page["items"]) == 2
    assert page["next"]
    rest = api.get(
        "/api/v1/notifications", params={"limit": 10, "status": "failed", "cursor": page["next"]}
    ).json()
    assert len(rest["items"]) == 3
    assert rest["next"] is None
    ids = [n["id"] for n in page["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    alert_id = page["items"][0]["alert_id"]
    mine = api.get("/api/v1/notifications", params={"alert_id": alert_id}).json()["items"]
    assert [n["alert_id"] for n in mine] == [alert_id]
    assert api.get(
        "/api/v1/notifications", params={"status": "sent,failed", "channel": "hook"}
    ).json()["items"]
    bad = api.get("/api/v1/notifications", params={"status": "lost"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "status"
    assert api.get("/api/v1/notifications", params={"cursor": "abc"}).json()["field"] == "cursor"
    assert api.get("/api/v1/notifications/999999").status_code == 404


def test_readers_see_on_call_but_cannot_change_it(api, db) -> None:
    reader = create_key(db, name="reader", scopes=["read"])
    headers = {"Authorization": f"Bearer {reader.token}"}
    assert api.get("/api/v1/oncall", headers=headers).status_code == 200
    assert api.get("/api/v1/notifications", headers=headers).status_code == 200
    r = api.post("/api/v1/escalation-policies", json={"name": "x", "levels": []}, headers=headers)
    assert r.status_code == 403
    assert r.json()["permission"] == "teams.write"
    assert api.get("/api/v1/channels", headers=headers).status_code == 403


def test_the_openapi_document_lists_the_notification_routes(api) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    for route in (
        "/api/v1/channels",
        "/api/v1/channels/{name}/test",
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}",
        "/api/v1/escalation-policies",
        "/api/v1/schedules",
        "/api/v1/schedules/{name}/oncall",
        "/api/v1/oncall",
    ):
        assert route in paths, route
