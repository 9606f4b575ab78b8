"""Datadog webhook deliveries (real captures, extended template) → canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

NAMES = ["datadog-triggered.json", "datadog-recovered.json"]


def test_triggered_reads_every_canonical_field(rows, body, payload):
    [ev] = rows("datadog", body("datadog-triggered.json"))
    assert ev["ts"] == datetime(2024, 12, 11, 15, 15, 33, tzinfo=UTC)  # "1733930133000"
    assert ev["status"] == "firing"
    assert ev["severity"] == "high"  # no priority; alert_type error
    assert ev["kind"] == "alert"
    assert ev["source"] == "datadog"
    assert ev["source_id"] == "160076582:service:keep-api-bugfix-yaml"
    assert ev["fingerprint"] == identity_hash(
        "datadog", "831563", "160076582:service:keep-api-bugfix-yaml"
    )
    assert ev["event_id"] == "datadog:7879709199720965710"
    assert ev["title"] == "Error monitor"
    assert ev["description"].startswith("trace_id:")
    assert "%%%" not in ev["description"]
    assert ev["service"] == "keep-api-bugfix-yaml"
    assert (ev["environment"], ev["host"], ev["value"]) == ("", "", None)
    assert ev["labels"]["tags"] == "monitor,service:keep-api-bugfix-yaml"
    assert ev["labels"]["monitor_id"] == "160076582"
    assert ev["labels"]["org_name"] == "DPN | KeepHQ"
    assert orjson.loads(ev["raw"]) == payload("datadog-triggered.json")


def test_recovered_resolves_the_same_fingerprint(rows, body):
    [fire] = rows("datadog", body("datadog-triggered.json"))
    [done] = rows("datadog", body("datadog-recovered.json"))
    assert done["status"] == "resolved"
    assert done["ts"] == datetime(2024, 12, 11, 15, 27, 33, tzinfo=UTC)
    assert done["fingerprint"] == fire["fingerprint"]
    assert done["title"] == fire["title"]
    assert done["severity"] == "medium"  # success carries none: the engine keeps the alert's


@pytest.mark.parametrize(
    ("priority", "alert_type", "severity"),
    [
        ("P1", "error", "critical"),
        ("P2", "error", "high"),
        ("P3", "error", "medium"),
        ("P4", "warning", "low"),
        ("P5", "error", "info"),
        ("", "warning", "medium"),
        ("", "info", "info"),
        ("", "error", "high"),
        ("", "success", "medium"),
    ],
)
def test_severity_is_priority_then_alert_type(rows, payload, priority, alert_type, severity):
    doc = payload("datadog-triggered.json")
    doc.update(severity=priority, alert_type=alert_type)
    assert rows("datadog", doc)[0]["severity"] == severity


def test_default_template_reads_transition_group_and_priority_from_the_title(rows, received_at):
    doc = {
        "body": "%%%\nCPU high\n%%%",
        "last_updated": "1733930133000",
        "event_type": "query_alert_monitor",
        "title": "[P2] [Recovered on {host:db-1,env:prod}] [prod] CPU high",
        "date": "1733930133000",
        "org": {"id": "831563", "name": "x"},
        "id": "42",
    }
    [ev] = rows("datadog", doc)
    assert ev["status"] == "resolved"
    assert ev["severity"] == "high"
    assert ev["title"] == "[prod] CPU high"  # a bracket that is not a known prefix stays
    assert ev["source_id"] == "[prod] CPU high:env:prod,host:db-1"
    assert (ev["environment"], ev["host"]) == ("prod", "db-1")
    assert ev["description"] == "CPU high"


def test_scope_order_does_not_change_the_identity(rows, payload):
    one = payload("datadog-triggered.json")
    one["scopes"] = "service:a,env:prod"
    two = payload("datadog-recovered.json")
    two["scopes"] = "env:prod,service:a"
    assert rows("datadog", one)[0]["fingerprint"] == rows("datadog", two)[0]["fingerprint"]


def test_warn_fires_and_recovered_wins_over_alert_type(rows, payload):
    doc = payload("datadog-triggered.json")
    doc.update(alert_transition="Warn", alert_type="warning")
    assert rows("datadog", doc)[0]["status"] == "firing"
    doc.update(alert_transition="Recovered", alert_type="error")
    assert rows("datadog", doc)[0]["status"] == "resolved"


def test_hostname_and_tags_fill_host_and_environment(rows, payload):
    doc = payload("datadog-triggered.json")
    doc.update(hostname="web-3", tags="env:staging,service:api,team:core")
    [ev] = rows("datadog", doc)
    assert (ev["host"], ev["environment"], ev["service"]) == ("web-3", "staging", "api")
    assert ev["labels"]["team"] == "core"


@pytest.mark.parametrize("name", NAMES)
def test_a_retried_delivery_gives_the_same_event_id(rows, body, name, received_at):
    first = rows("datadog", body(name))
    again = rows("datadog", body(name), at=received_at + timedelta(minutes=1))
    assert first[0]["event_id"] == again[0]["event_id"]


def test_without_an_id_the_event_id_is_derived_and_stable(rows, payload, received_at):
    doc = payload("datadog-triggered.json")
    del doc["id"]
    first = rows("datadog", doc)[0]["event_id"]
    assert first == rows("datadog", doc, at=received_at + timedelta(hours=1))[0]["event_id"]
    doc["date"] = "1733930193000"
    assert rows("datadog", doc)[0]["event_id"] != first


def test_missing_date_falls_back_to_receive_time(rows, payload, received_at):
    doc = payload("datadog-triggered.json")
    del doc["date"], doc["last_updated"]
    assert rows("datadog", doc)[0]["ts"] == received_at


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: [d.pop("monitor_id"), d.pop("title")], "monitor_id"),
        (lambda d: d.update(date="$DATE"), "date"),
        (lambda d: d.update(org="831563"), "org"),
        (lambda d: d.update(org={"id": ["x"]}), "org.id"),
        (lambda d: d.update(tags=["a", "b"]), "tags"),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field):
    doc = payload("datadog-triggered.json")
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("datadog", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=fuzzing.json_values | fuzzing.damaged(fuzzing.load(NAMES[0])))
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("datadog", doc)
