"""From a real Alertmanager payload to an alert people act on, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.worker import Worker

PAYLOADS = Path(__file__).parents[2] / "payloads"


def _drain(worker: Worker) -> None:
    while worker.step():
        pass


def test_firing_payload_becomes_an_alert_and_the_resolved_one_resolves_it(
    api, db, settings
) -> None:
    worker = Worker(db, settings)
    r = api.post(
        "/api/v1/ingest/prometheus",
        content=(PAYLOADS / "alertmanager-04-firing-PeersDemoErrorRatio.json").read_bytes(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == r.json()["accepted"] >= 1
    _drain(worker)
    items = api.get("/api/v1/alerts", params={"status": "open"}).json()["items"]
    assert [a["title"] for a in items] == ["PeersDemoErrorRatio"]
    alert = items[0]
    assert alert["source"] == "prometheus"
    assert alert["status"] == "active"

    r = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "looking"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "key:tests"

    api.post(
        "/api/v1/ingest/prometheus",
        content=(PAYLOADS / "alertmanager-05-resolved-PeersDemoErrorRatio.json").read_bytes(),
    )
    _drain(worker)
    done = api.get(f"/api/v1/alerts/{alert['id']}").json()
    assert done["status"] == "resolved"
    assert done["resolved_by"] == "klaxon"
    actions = [h["action"] for h in api.get(f"/api/v1/alerts/{alert['id']}/history").json()]
    assert actions == ["fired", "acknowledged", "resolved"]


def test_a_redelivered_payload_is_stored_once(api, db, settings) -> None:
    body = (PAYLOADS / "alertmanager-01-firing-PeersManualPush.json").read_bytes()
    first = api.post("/api/v1/ingest/prometheus", content=body).json()
    second = api.post("/api/v1/ingest/prometheus", content=body).json()
    assert first["stored"] == 1
    assert second["stored"] == 0
    assert first["event_ids"] == second["event_ids"]
    Worker(db, settings).step()
    alerts = api.get("/api/v1/alerts").json()["items"]
    assert len(alerts) == 1
    assert alerts[0]["occurrences"] == 1


def test_an_invalid_payload_is_422_naming_the_field_and_stores_nothing(api, db, settings) -> None:
    r = api.post(
        "/api/v1/ingest/grafana", json={"alerts": [{"status": "firing", "labels": "nope"}]}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False
    assert body["status"] == 422
    assert "alerts[0]" in (body["field"] or "")
    assert Worker(db, settings).step() == 0


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"title": "a\u0000b"}, "[1].title"),
        ({"labels": {"pod": "x\u0000"}}, "[1].labels.pod"),
    ],
)
def test_a_nul_character_is_422_on_both_stores_and_the_request_stores_nothing(
    api, db, settings, event, field
) -> None:
    """PostgreSQL text and jsonb cannot hold NUL: refused before the store, as on SQLite."""
    ts = "2026-03-01T00:00:00Z"
    r = api.post("/api/v1/events", json=[{"title": "fine", "ts": ts}, {"ts": ts, **event}])
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert Worker(db, settings).step() == 0
    raw = {"title": "kept", "ts": ts, "raw": "before\u0000after"}
    assert api.post("/api/v1/events", json=[raw]).json()["stored"] == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Authorization": ""}, 401), ({"Authorization": "Bearer klx_nope"}, 401)],
)
def test_ingest_needs_a_valid_key(api, headers, status) -> None:
    r = api.post("/api/v1/events", json=[{"title": "x"}], headers=headers)
    assert r.status_code == status
    assert r.json()["status"] == status


def test_metrics_count_what_was_ingested_refused_and_processed(api, db, settings) -> None:
    worker = Worker(db, settings)
    body = (PAYLOADS / "alertmanager-04-firing-PeersDemoErrorRatio.json").read_bytes()
    assert api.post("/api/v1/ingest/prometheus", content=body).status_code == 200
    assert api.post("/api/v1/ingest/prometheus", content=b"{not json").status_code == 422
    before = api.get("/metrics").text
    assert "klaxon_queue_depth 1" in before
    _drain(worker)
    worker._stats_saved = 0.0  # the worker saves its stats at most every 5 s: now, here
    worker._maybe_save_stats()
    text = api.get("/metrics").text
    assert 'klaxon_events_ingested_total{source="prometheus"} 1' in text
    assert 'klaxon_events_rejected_total{reason="invalid",source="prometheus"} 1' in text
    assert "klaxon_queue_depth 0" in text
    assert "klaxon_worker_events_total 1" in text
    assert "klaxon_rule_evaluation_seconds_total" in text
    assert "klaxon_worker_last_batch_seconds" in text
    assert 'klaxon_open_alerts{severity="' in text
