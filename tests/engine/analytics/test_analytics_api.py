"""The analytics, backtest and preview routes: filters as query parameters, errors naming fields."""

from __future__ import annotations

import polars as pl
import pytest

from engine.schema import EVENT_SCHEMA
from engine.store import rules as rules_store
from engine.store.events import insert_events

RULES = """rule disk "Disk full on {{ host }}"
  when title == "disk"
  by host
end
"""


@pytest.fixture
def alerts(store):
    at, a = store.at, store.alert
    store.alerts(
        [
            a(1, at(0, 10), acknowledged_at=at(0, 10, 1), team="platform"),
            a(2, at(0, 11), acknowledged_at=at(0, 11, 3), team="payments", severity="critical"),
            a(
                3,
                at(1, 9),
                team="platform",
                resolved_at=at(1, 9, 5),
                resolved_by="klaxon",
                resolution="auto",
            ),
        ]
    )


def _period(store, **extra):
    return {"from": store.T0.isoformat(), "to": store.at(7).isoformat(), **extra}


@pytest.mark.parametrize(
    "name",
    [
        "dashboard",
        "mtta",
        "mttr",
        "mttd",
        "volume",
        "noise",
        "flapping",
        "sla",
        "teams",
        "delivery",
    ],
)
def test_every_analytics_route_answers_with_the_filters_it_was_given(
    api, alerts, store, name
) -> None:
    r = api.get(f"/api/v1/analytics/{name}", params=_period(store, team="platform,payments"))
    assert r.status_code == 200, r.text
    assert r.json()["filters"]["team"] == ["platform", "payments"]


def test_mtta_over_http_in_seconds(api, alerts, store) -> None:
    body = api.get("/api/v1/analytics/mtta", params=_period(store)).json()
    assert body["overall"] == {"count": 2, "mean": 120.0, "median": 120.0, "p90": 168.0}
    critical = api.get("/api/v1/analytics/mtta", params=_period(store, severity="critical")).json()
    assert critical["overall"]["mean"] == 180.0
    grouped = api.get("/api/v1/analytics/mtta", params=_period(store, by="team")).json()
    assert [g["team"] for g in grouped["groups"]] == ["payments", "platform"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-09T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"severity": "urgent"}, "severity"),
        ({"bucket": "month"}, "bucket"),
        ({"by": "colour"}, "by"),
    ],
)
def test_bad_filters_are_422_naming_the_field(api, params, field) -> None:
    r = api.get("/api/v1/analytics/mtta", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["ok"], body["status"], body["field"]) == (False, 422, field)


def test_sla_targets_can_be_read_changed_and_are_audited(api) -> None:
    assert api.get("/api/v1/analytics/sla/targets").json()["critical"] == {
        "ack_s": 300,
        "resolve_s": 3600,
    }
    r = api.put("/api/v1/analytics/sla/targets", json={"critical": {"ack_s": 120}})
    assert r.status_code == 200, r.text
    assert r.json()["critical"] == {"ack_s": 120, "resolve_s": 3600}
    bad = api.put("/api/v1/analytics/sla/targets", json={"critical": {"ack_s": -1}})
    assert (bad.status_code, bad.json()["field"]) == (422, "critical.ack_s")
    assert api.get("/api/v1/analytics/sla/targets").json()["critical"]["ack_s"] == 120


def test_a_backtest_job_reports_progress_then_its_result(api, db, store) -> None:
    rows = [
        {
            "event_id": f"e{i}",
            "ts": store.at(0, 0, i),
            "received_at": store.at(0, 0, i),
            "kind": "event",
            "source": "app",
            "source_id": "",
            "fingerprint": "f",
            "title": "disk",
            "description": "",
            "severity": "high",
            "status": "firing",
            "service": "api",
            "environment": "",
            "host": f"h{i % 2}",
            "value": None,
            "labels": {},
            "raw": None,
        }
        for i in range(4)
    ]
    with db.connect() as conn:
        insert_events(conn, pl.DataFrame(rows, schema=EVENT_SCHEMA))
        rules_store.save(conn, RULES, actor="tests")
    r = api.post(
        "/api/v1/backtest",
        json={"rules": RULES, "from": store.T0.isoformat(), "to": store.at(1).isoformat()},
    )
    assert r.status_code in (200, 202), r.text
    job = r.json()
    assert job["kind"] == "backtest"
    done = api.post(
        "/api/v1/backtest",
        json={
            "rules": RULES,
            "from": store.T0.isoformat(),
            "to": store.at(1).isoformat(),
            "wait": True,
        },
    ).json()
    assert (done["status"], done["progress"]) == ("done", 1.0)
    assert done["result"]["totals"]["alerts"] == 2
    polled = api.get(f"/api/v1/backtest/{job['id']}").json()
    assert polled["id"] == job["id"]
    assert api.get("/api/v1/backtest/nope").status_code == 404


def test_a_backtest_with_broken_rules_is_422_with_the_line(api, store) -> None:
    r = api.post(
        "/api/v1/backtest",
        json={
            "rules": 'rule x\n  when severity == "urgent"\nend\n',
            "from": store.T0.isoformat(),
            "to": store.at(1).isoformat(),
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert (body["field"], body["line"]) == ("rules", 2)
    missing = api.post("/api/v1/backtest", json={"rules": RULES, "to": store.at(1).isoformat()})
    assert (missing.status_code, missing.json()["field"]) == (422, "from")
    backwards = api.post(
        "/api/v1/backtest",
        json={"rules": RULES, "from": store.at(1).isoformat(), "to": store.T0.isoformat()},
    )
    assert (backwards.status_code, backwards.json()["field"]) == (422, "to")


def test_silence_preview_validates_the_matcher(api, store) -> None:
    r = api.post(
        "/api/v1/silences/preview",
        json={"matcher": "service ==", "from": store.T0.isoformat(), "to": store.at(1).isoformat()},
    )
    assert (r.status_code, r.json()["field"]) == (422, "matcher")
    ok = api.post(
        "/api/v1/silences/preview",
        json={
            "matcher": 'service == "db"',
            "from": store.T0.isoformat(),
            "to": store.at(1).isoformat(),
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["alerts"] == 0


def test_analytics_need_the_read_permission(api) -> None:
    r = api.get("/api/v1/analytics/dashboard", headers={"Authorization": "Bearer klx_nope"})
    assert r.status_code == 401
