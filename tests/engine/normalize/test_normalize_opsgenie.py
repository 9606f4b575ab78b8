"""Opsgenie webhook actions (documented examples) → canonical events or notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

NAMES = ["opsgenie-create.json", "opsgenie-close.json"]
ALERT_ID = "052652ac-5d1c-464a-812a-7dd18bbfba8c"


def test_create_reads_every_canonical_field(rows, body, payload):
    [ev] = rows("opsgenie", body("opsgenie-create.json"))
    assert ev["ts"] == datetime(2015, 1, 5, 10, 3, 11, 104000, tzinfo=UTC)  # createdAt, ms
    assert ev["status"] == "firing"
    assert ev["severity"] == "medium"  # no priority: Opsgenie's default P3
    assert ev["kind"] == "alert"
    assert ev["source_id"] == ALERT_ID
    assert ev["fingerprint"] == identity_hash(
        "opsgenie", "37c8f316-17c6-49d7-899b-9c7e540c048d", ALERT_ID
    )
    assert ev["title"] == "test alert"  # " test alert", stripped
    assert (ev["service"], ev["environment"], ev["host"], ev["value"]) == ("", "", "", None)
    assert ev["labels"] == {
        "action": "Create",
        "alias": "aliastest",
        "tiny_id": "23",
        "tags": "tag1,tag2",
        "teams": "team1,team2",
        "alert_source": "fili@ifountain.com",
        "integration_name": "Integration1",
        "source_name": "web",
        "source_type": "API",
    }
    assert orjson.loads(ev["raw"]) == payload("opsgenie-create.json")


def test_close_resolves_the_same_alert_at_updated_at_in_nanoseconds(rows, body):
    [fire] = rows("opsgenie", body("opsgenie-create.json"))
    [done] = rows("opsgenie", body("opsgenie-close.json"))
    assert done["status"] == "resolved"
    assert done["ts"] == datetime(2015, 1, 5, 10, 6, 14, 669001, tzinfo=UTC)
    assert done["fingerprint"] == fire["fingerprint"]
    assert done["title"] == fire["title"]
    assert done["event_id"] != fire["event_id"]


def test_close_for_an_alert_never_seen_before_resolves(rows, payload):
    doc = payload("opsgenie-close.json")
    doc["alert"]["alertId"] = "never-seen"
    assert rows("opsgenie", doc)[0]["status"] == "resolved"


def test_delete_resolves(rows, payload):
    doc = payload("opsgenie-close.json")
    doc["action"] = "Delete"
    assert rows("opsgenie", doc)[0]["status"] == "resolved"


@pytest.mark.parametrize("action", ["AddNote", "Acknowledge", "UnAcknowledge", "Escalate"])
def test_other_actions_give_a_note_and_no_event(payload, received_at, action):
    doc = payload("opsgenie-close.json")
    doc["action"] = action
    result = normalize("opsgenie", doc, received_at=received_at)
    assert result.events.is_empty()
    assert result.note == f"Opsgenie action {action} ignored"


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("P1", "critical"),
        ("P2", "high"),
        ("p3", "medium"),
        ("P4", "low"),
        ("P5", "info"),
        ("1", "critical"),
        (4, "low"),
        ("critical", "critical"),
        ("whatever", "medium"),
    ],
)
def test_priority_mapping(rows, payload, priority, severity):
    doc = payload("opsgenie-create.json")
    doc["alert"]["priority"] = priority
    assert rows("opsgenie", doc)[0]["severity"] == severity


def test_entity_and_details_fill_service_host_and_environment(rows, payload):
    doc = payload("opsgenie-create.json")
    doc["alert"].update(
        entity="checkout", details={"host": "web-2", "env": "prod", "action": "ignored"}
    )
    [ev] = rows("opsgenie", doc)
    assert (ev["service"], ev["host"], ev["environment"]) == ("checkout", "web-2", "prod")
    assert ev["labels"]["action"] == "Create"  # a detail never overrides Klaxon's own label


@pytest.mark.parametrize("name", NAMES)
def test_a_retried_delivery_gives_the_same_event_id(rows, body, name, received_at):
    first = rows("opsgenie", body(name))
    again = rows("opsgenie", body(name), at=received_at + timedelta(minutes=1))
    assert first[0]["event_id"] == again[0]["event_id"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("action"), "action"),
        (lambda d: d.pop("alert"), "alert"),
        (lambda d: d["alert"].pop("alertId"), "alert.alertId"),
        (lambda d: d["alert"].update(createdAt="today"), "alert.createdAt"),
        (lambda d: d["alert"].update(tags="a,b"), "alert.tags"),
        (lambda d: d["alert"].update(details=["a"]), "alert.details"),
        (lambda d: d.update(source="web"), "source"),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field):
    doc = payload("opsgenie-create.json")
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("opsgenie", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=fuzzing.json_values
    | fuzzing.damaged(fuzzing.load(NAMES[0]))
    | fuzzing.damaged(fuzzing.load(NAMES[1]))
)
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("opsgenie", doc)
