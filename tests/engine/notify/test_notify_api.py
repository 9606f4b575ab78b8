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


def test_team_and_user_notification_settings_through_the_api(api, db, people) -> None:
    people.team("platform")
    people.user("ann@example.com")
    for name in ("chat", "backup"):
        api.post("/api/v1/channels", json={"name": name, "url": f"json://127.0.0.1/{name}"})
    quiet = {"days": "mon-fri", "start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}
    r = api.put(
        "/api/v1/notify-settings/teams/platform",
        json={"default_channels": ["chat"], "fallback_channel": "backup", "quiet_hours": quiet},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "team": "platform",
        "default_channels": ["chat"],
        "fallback_channel": "backup",
        "escalation_policy": None,
        "quiet_hours": quiet,
    }
    assert api.get("/api/v1/notify-settings/teams/platform").json() == r.json()
    # Only what is given changes; null clears.
    r = api.put("/api/v1/notify-settings/teams/platform", json={"fallback_channel": None})
    assert (r.json()["fallback_channel"], r.json()["default_channels"]) == (None, ["chat"])
    r = api.put(
        "/api/v1/notify-settings/users/ann@example.com",
        json={"contact_channels": ["chat"], "tz": "Asia/Tokyo"},
    )
    assert r.status_code == 200, r.text
    assert api.get("/api/v1/notify-settings/users/ann@example.com").json() == {
        "user": "ann@example.com",
        "contact_channels": ["chat"],
        "tz": "Asia/Tokyo",
        "quiet_hours": {},
    }
    with db.read() as conn:
        actions = [a for (a,) in conn.execute(select(AuditEntry.action))]
    assert (actions.count("team.notify"), actions.count("user.notify")) == (2, 1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # checks made before the store
@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("teams/platform", {"default_channels": ["chat", "nope"]}, 422, "default_channels[1]"),
        ("teams/platform", {"fallback_channel": "nope"}, 422, "fallback_channel"),
        ("teams/platform", {"escalation_policy": "ghost"}, 422, "escalation_policy"),
        ("teams/platform", {"quiet_hours": {"start": "25:00", "end": "7:00"}}, 422, None),
        ("teams/platform", {"colour": "red"}, 422, "colour"),
        ("teams/ghosts", {"default_channels": []}, 404, "team"),
        ("users/ann@example.com", {"tz": "Moon/Base"}, 422, "tz"),
        ("users/ann@example.com", {"tz": None}, 422, "tz"),
        ("users/ann@example.com", {"contact_channels": "chat"}, 422, "contact_channels"),
        ("users/nobody@example.com", {"tz": "UTC"}, 404, "user"),
    ],
)
def test_bad_notification_settings_name_the_field(api, people, path, body, status, field) -> None:
    people.team("platform")
    people.user("ann@example.com")
    api.post("/api/v1/channels", json={"name": "chat", "url": "json://127.0.0.1/x"})
    r = api.put(f"/api/v1/notify-settings/{path}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["ok"] is False
    if field is None:
        assert r.json()["field"].startswith("quiet_hours.")
    else:
        assert r.json()["field"] == field
    assert api.get("/api/v1/notify-settings/teams/platform").json()["default_channels"] == []


def test_readers_see_team_settings_but_not_peoples_or_change_them(api, db, people) -> None:
    people.team("platform")
    people.user("ann@example.com")
    reader = create_key(db, name="reader", scopes=["read"])
    headers = {"Authorization": f"Bearer {reader.token}"}
    assert api.get("/api/v1/notify-settings/teams/platform", headers=headers).status_code == 200
    r = api.put("/api/v1/notify-settings/teams/platform", json={}, headers=headers)
    assert (r.status_code, r.json()["permission"]) == (403, "teams.write")
    r = api.get("/api/v1/notify-settings/users/ann@example.com", headers=headers)
    assert (r.status_code, r.json()["permission"]) == (403, "users.read")
    r = api.put(
        "/api/v1/notify-settings/users/ann@example.com", json={"tz": "Asia/Tokyo"}, headers=headers
    )
    assert (r.status_code, r.json()["permission"]) == (403, "users.write")
    assert api.get("/api/v1/notify-settings/users/ann@example.com").json()["tz"] != "Asia/Tokyo"
