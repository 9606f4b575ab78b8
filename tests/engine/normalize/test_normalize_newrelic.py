"""New Relic workflow and legacy channel payloads (real fixtures) → canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

NAMES = [
    "newrelic-activated.json",
    "newrelic-closed.json",
    "newrelic-legacy-open.json",
    "newrelic-legacy-closed.json",
]


def test_activated_issue_reads_every_canonical_field(rows, body, payload):
    [ev] = rows("newrelic", body("newrelic-activated.json"))
    assert ev["ts"] == datetime(2024, 4, 22, 7, 8, 28, 699000, tzinfo=UTC)  # updatedAt
    assert ev["status"] == "firing"
    assert ev["severity"] == "critical"
    assert ev["kind"] == "alert"
    assert ev["source_id"] == "c5faa7e6-7b54-402d-af79-f99601e0278c"
    assert ev["fingerprint"] == identity_hash(
        "newrelic", "4420147", "issue", "c5faa7e6-7b54-402d-af79-f99601e0278c"
    )
    assert ev["title"] == (
        "zulip_app query result is > 1.0 for 1 minutes on 'Zulip Server Low Storage'"
    )
    assert ev["description"] == "conditions: Zulip Server Low Storage; policies: Golden Signals"
    assert (ev["service"], ev["environment"], ev["host"]) == ("zulip_app", "", "")
    assert ev["labels"]["workflow_name"] == "testWorkflow"
    assert ev["labels"]["state"] == "ACTIVATED"
    assert ev["labels"]["is_correlated"] == "false"
    assert orjson.loads(ev["raw"]) == payload("newrelic-activated.json")


def test_closed_issue_never_seen_before_resolves(rows, body):
    [ev] = rows("newrelic", body("newrelic-closed.json"))
    assert ev["status"] == "resolved"
    assert ev["ts"] == datetime(2024, 4, 22, 6, 17, 37, 383000, tzinfo=UTC)
    assert ev["source_id"] == "95a9344a-2590-48ce-8d83-07e28b6d22c6"  # id, not issueUrl's
    assert ev["fingerprint"] == identity_hash(
        "newrelic", "1", "issue", "95a9344a-2590-48ce-8d83-07e28b6d22c6"
    )


def test_one_issue_keeps_its_fingerprint_from_activated_to_closed(rows, payload):
    fire = payload("newrelic-activated.json")
    done = payload("newrelic-activated.json")
    done.update(state="CLOSED", trigger="INCIDENT_CLOSED", updatedAt=1713770000000)
    [a] = rows("newrelic", fire)
    [b] = rows("newrelic", done)
    assert (a["status"], b["status"]) == ("firing", "resolved")
    assert a["fingerprint"] == b["fingerprint"]
    assert a["event_id"] != b["event_id"]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("CREATED", "firing"),
        ("ACTIVATED", "firing"),
        ("ACKNOWLEDGED", "firing"),
        ("CLOSED", "resolved"),
    ],
)
def test_workflow_states(rows, payload, state, status):
    doc = payload("newrelic-activated.json")
    doc["state"] = state
    assert rows("newrelic", doc)[0]["status"] == status


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("CRITICAL", "critical"),
        ("HIGH", "high"),
        ("MEDIUM", "medium"),
        ("LOW", "low"),
        (None, "medium"),
    ],
)
def test_workflow_priority(rows, payload, priority, severity):
    doc = payload("newrelic-activated.json")
    doc["priority"] = priority
    assert rows("newrelic", doc)[0]["severity"] == severity


def test_legacy_open_notification(rows, body):
    [ev] = rows("newrelic", body("newrelic-legacy-open.json"))
    assert ev["ts"] == datetime(2020, 9, 25, 11, 23, 27, 849000, tzinfo=UTC)
    assert ev["status"] == "firing"
    assert ev["severity"] == "info"
    assert ev["source_id"] == "0"
    assert ev["fingerprint"] == identity_hash("newrelic", "11111", "incident", "0")
    assert ev["title"] == "New Relic Alert - Test Condition (New Relic Alert - Test Policy)"
    assert ev["description"] == "I am a test Violation"
    assert ev["labels"]["account_name"] == "Myaccount (Staging)"
    assert ev["labels"]["target_product"] == "TESTING"


def test_legacy_closed_never_seen_before_resolves(rows, body):
    [ev] = rows("newrelic", body("newrelic-legacy-closed.json"))
    assert ev["status"] == "resolved"
    assert ev["severity"] == "medium"  # no severity in the minimal payload
    assert ev["ts"] == datetime(2020, 11, 11, 22, 32, 11, 151000, tzinfo=UTC)
    assert ev["title"] == "Server Down (Test policy name)"
    assert ev["fingerprint"] == identity_hash("newrelic", "2941966", "incident", "1234")


def test_legacy_host_target_fills_host(rows, payload):
    doc = payload("newrelic-legacy-open.json")
    doc["targets"][0].update(name="db-7", type="Host", labels={"role": "db"})
    doc["severity"] = "WARNING"
    [ev] = rows("newrelic", doc)
    assert (ev["host"], ev["service"], ev["severity"]) == ("db-7", "", "medium")
    assert ev["labels"]["role"] == "db"


@pytest.mark.parametrize("name", NAMES)
def test_a_retried_delivery_gives_the_same_event_id(rows, body, name, received_at):
    first = rows("newrelic", body(name))
    again = rows("newrelic", body(name), at=received_at + timedelta(minutes=1))
    assert first[0]["event_id"] == again[0]["event_id"]


@pytest.mark.parametrize(
    ("name", "edit", "field"),
    [
        ("newrelic-activated.json", lambda d: d.pop("id"), "id"),
        ("newrelic-activated.json", lambda d: d.update(state="OPEN"), "state"),
        ("newrelic-activated.json", lambda d: d.update(updatedAt="soon"), "updatedAt"),
        ("newrelic-activated.json", lambda d: d.update(impactedEntities="a"), "impactedEntities"),
        ("newrelic-legacy-open.json", lambda d: d.update(current_state="gone"), "current_state"),
        ("newrelic-legacy-open.json", lambda d: d.update(targets=[3]), "targets[0]"),
        ("newrelic-legacy-closed.json", lambda d: d.update(incident_id=None), "incident_id"),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, name, edit, field):
    doc = payload(name)
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("newrelic", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=fuzzing.json_values
    | fuzzing.damaged(fuzzing.load(NAMES[0]))
    | fuzzing.damaged(fuzzing.load(NAMES[2]))
)
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("newrelic", doc)
