"""PagerDuty webhook v3 events (real fixtures) → canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

NAMES = ["pagerduty-v3-triggered.json", "pagerduty-v3-resolved.json"]


def test_triggered_reads_every_canonical_field(rows, body, payload):
    [ev] = rows("pagerduty", body("pagerduty-v3-triggered.json"))
    assert ev["ts"] == datetime(2021, 6, 4, 13, 35, 29, 781000, tzinfo=UTC)
    assert ev["status"] == "firing"
    assert ev["severity"] == "high"  # priority null, urgency high
    assert ev["kind"] == "alert"
    assert ev["source_id"] == "PFQZPSY"
    assert ev["fingerprint"] == identity_hash("pagerduty", "pig208.pagerduty.com", "PFQZPSY")
    assert ev["event_id"] == "pagerduty:01BZYIL05THJDFF2Y08X9SVMTU"
    assert ev["title"] == "Test Incident 3"
    assert (ev["service"], ev["environment"], ev["host"], ev["value"]) == ("pig208", "", "", None)
    assert ev["labels"] == {
        "event_type": "incident.triggered",
        "incident_status": "triggered",
        "incident_number": "9",
        "html_url": "https://pig208.pagerduty.com/incidents/PFQZPSY",
        "urgency": "high",
        "escalation_policy": "Default",
        "agent": "PIG 208",
        "assignees": "PIG 208",
    }
    assert orjson.loads(ev["raw"]) == payload("pagerduty-v3-triggered.json")


def test_resolved_for_an_incident_never_seen_before(rows, body):
    [ev] = rows("pagerduty", body("pagerduty-v3-resolved.json"))
    assert ev["status"] == "resolved"
    assert ev["ts"] == datetime(2021, 6, 4, 13, 16, 53, 816000, tzinfo=UTC)
    assert ev["source_id"] == "PCPZE64"
    assert ev["fingerprint"] == identity_hash("pagerduty", "pig208.pagerduty.com", "PCPZE64")


def test_one_incident_keeps_its_fingerprint_from_trigger_to_resolve(rows, payload):
    done = payload("pagerduty-v3-triggered.json")
    done["event"].update(id="01NEXT", event_type="incident.resolved")
    done["event"]["data"]["status"] = "resolved"
    [a] = rows("pagerduty", payload("pagerduty-v3-triggered.json"))
    [b] = rows("pagerduty", done)
    assert (a["status"], b["status"]) == ("firing", "resolved")
    assert a["fingerprint"] == b["fingerprint"]


@pytest.mark.parametrize(
    ("event_type", "data_status", "status"),
    [
        ("incident.acknowledged", "acknowledged", "firing"),
        ("incident.reopened", "triggered", "firing"),
        ("incident.priority_updated", "triggered", "firing"),
        ("incident.annotated", "resolved", "resolved"),  # a note on a closed incident
        ("incident.resolved", None, "resolved"),
    ],
)
def test_status_follows_the_event_type_and_the_incident_state(
    rows, payload, event_type, data_status, status
):
    doc = payload("pagerduty-v3-triggered.json")
    doc["event"]["event_type"] = event_type
    doc["event"]["data"]["status"] = data_status
    assert rows("pagerduty", doc)[0]["status"] == status


@pytest.mark.parametrize(
    ("priority", "urgency", "severity"),
    [
        ({"summary": "P1", "type": "priority_reference"}, "low", "critical"),
        ({"summary": "P2"}, "low", "high"),
        ({"summary": "P3"}, "high", "medium"),
        ({"summary": "P4"}, "high", "low"),
        ({"summary": "P5"}, "high", "info"),
        (None, "low", "low"),
        (None, None, "high"),
    ],
)
def test_severity_is_priority_then_urgency(rows, payload, priority, urgency, severity):
    doc = payload("pagerduty-v3-triggered.json")
    doc["event"]["data"].update(priority=priority, urgency=urgency)
    assert rows("pagerduty", doc)[0]["severity"] == severity


def test_non_incident_events_are_ignored_with_a_note(received_at):
    ping = {"event": {"id": "01X", "event_type": "pagey.ping", "resource_type": "pagey"}}
    result = normalize("pagerduty", ping, received_at=received_at)
    assert result.events.is_empty()
    assert result.note == "PagerDuty event pagey.ping ignored"


def test_webhooks_v2_are_refused(received_at):
    with pytest.raises(EventValidationError) as caught:
        normalize("pagerduty", {"messages": []}, received_at=received_at)
    assert caught.value.field == "event"


@pytest.mark.parametrize("name", NAMES)
def test_a_retried_delivery_gives_the_same_event_id(rows, body, name, received_at):
    first = rows("pagerduty", body(name))
    again = rows("pagerduty", body(name), at=received_at + timedelta(minutes=1))
    assert first[0]["event_id"] == again[0]["event_id"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda e: e.pop("event_type"), "event.event_type"),
        (lambda e: e.pop("data"), "event.data"),
        (lambda e: e["data"].pop("id"), "event.data.id"),
        (lambda e: e["data"].update(status="exploded"), "event.data.status"),
        (lambda e: e["data"].update(priority="P1"), "event.data.priority"),
        (lambda e: e["data"].update(assignees=["x"]), "event.data.assignees[0]"),
        (lambda e: e.update(occurred_at=12.5j), "event.occurred_at"),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field):
    doc = payload("pagerduty-v3-triggered.json")
    edit(doc["event"])
    with pytest.raises(EventValidationError) as caught:
        normalize("pagerduty", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=fuzzing.json_values | fuzzing.damaged(fuzzing.load(NAMES[0])))
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("pagerduty", doc)
