"""Grafana unified alerting webhook bodies (documented and captured) → canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

CEST = timezone(timedelta(hours=2))
NAMES = ["grafana-firing.json", "grafana-resolved.json", "grafana-resolved-valuestring.json"]


def test_firing_group_gives_one_event_per_alert(rows, body, payload):
    evs = rows("grafana", body("grafana-firing.json"))
    assert [e["title"] for e in evs] == ["High memory usage", "High CPU usage"]
    first = evs[0]
    assert first["ts"] == datetime(2021, 10, 12, 9, 51, 3, 157076, tzinfo=CEST)
    assert first["status"] == "firing"
    assert first["severity"] == "medium"  # no severity label
    assert first["kind"] == "alert"
    assert first["source"] == "grafana"
    assert first["source_id"] == "c6eadffa33fcdf37"
    assert first["fingerprint"] == identity_hash(
        "grafana", "https://play.grafana.org/", "1", "c6eadffa33fcdf37"
    )
    assert first["description"] == "The system has high memory usage"
    assert (first["service"], first["environment"], first["host"]) == ("", "", "")
    assert first["value"] == 44.23943737541908  # refId B; C is the 0/1 threshold
    assert first["labels"] == {
        "alertname": "High memory usage",
        "team": "blue",
        "zone": "us-1",
        "annotation_description": "The system has high memory usage",
        "annotation_runbook_url": "https://myrunbook.com/runbook/1234",
        "annotation_summary": "This alert was triggered for zone us-1",
        "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
        "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
        "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
        "value_B": "44.23943737541908",
        "value_C": "1.0",
    }
    assert orjson.loads(first["raw"]) == payload("grafana-firing.json")["alerts"][0]


def test_fire_and_resolve_share_fingerprints_per_alert(rows, body):
    fire = rows("grafana", body("grafana-firing.json"))
    done = rows("grafana", body("grafana-resolved.json"))
    assert [e["source_id"] for e in fire] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    assert [e["fingerprint"] for e in fire] == [e["fingerprint"] for e in done]
    assert len({e["fingerprint"] for e in fire}) == 2
    assert [e["status"] for e in done] == ["resolved", "resolved"]
    # resolved: ts is endsAt
    assert [e["ts"] for e in done] == [datetime(2021, 10, 12, 10, 6, 3, 157076, tzinfo=CEST)] * 2


def test_value_string_and_nine_fraction_digits(rows, body):
    [ev] = rows("grafana", body("grafana-resolved-valuestring.json"))
    assert ev["status"] == "resolved"
    assert ev["ts"] == datetime(2022, 6, 17, 0, 51, 24, 67337, tzinfo=UTC)
    assert ev["value"] == 24.0
    assert ev["labels"]["value_B0"] == "24.0"
    assert ev["title"] == "Test alert"
    assert ev["description"] == "This is a description"
    assert ev["fingerprint"] == identity_hash(
        "grafana", "https://grafana.example.com/", "1", "d8a21484c9c25a60"
    )


def test_value_string_with_several_vars_takes_the_first_ref_id(rows, payload):
    doc = payload("grafana-resolved-valuestring.json")
    doc["alerts"][0]["valueString"] = (
        "[ var='C' labels={} value=1 ], [ var='B' labels={value=9, host=a} value=0.75 ]"
    )
    [ev] = rows("grafana", doc)
    assert ev["value"] == 0.75
    assert (ev["labels"]["value_B"], ev["labels"]["value_C"]) == ("0.75", "1.0")


def test_values_win_over_value_string(rows, payload):
    doc = payload("grafana-firing.json")
    doc["alerts"][0]["valueString"] = "[ var='A' labels={} value=3 ]"
    assert rows("grafana", doc)[0]["value"] == 44.23943737541908


def test_group_status_is_never_copied(rows, payload):
    doc = payload("grafana-firing.json")
    doc["alerts"][1] = payload("grafana-resolved.json")["alerts"][1]
    assert [e["status"] for e in rows("grafana", doc)] == ["firing", "resolved"]


def test_identity_is_scoped_by_instance_and_org(rows, payload):
    base = rows("grafana", payload("grafana-firing.json"))[0]["fingerprint"]
    other_org = payload("grafana-firing.json")
    other_org["orgId"] = 2
    other_url = payload("grafana-firing.json")
    other_url["externalURL"] = "https://grafana.internal/"
    assert rows("grafana", other_org)[0]["fingerprint"] != base
    assert rows("grafana", other_url)[0]["fingerprint"] != base


def test_conventional_labels_fill_service_environment_host_and_severity(rows, payload):
    doc = payload("grafana-firing.json")
    doc["alerts"][0]["labels"].update(
        job="node", deploy="prod", instance="db-1:9100", severity="page"
    )
    ev = rows("grafana", doc)[0]
    assert (ev["service"], ev["environment"], ev["host"]) == ("node", "prod", "db-1:9100")
    assert ev["severity"] == "critical"


def test_missing_fingerprint_falls_back_to_the_label_set(rows, payload):
    doc = payload("grafana-firing.json")
    del doc["alerts"][0]["fingerprint"]
    again = payload("grafana-resolved.json")
    del again["alerts"][0]["fingerprint"]
    assert rows("grafana", doc)[0]["fingerprint"] == rows("grafana", again)[0]["fingerprint"]


@pytest.mark.parametrize("name", NAMES)
def test_a_retried_delivery_gives_the_same_event_ids(rows, body, name, received_at):
    first = rows("grafana", body(name))
    again = rows("grafana", body(name), at=received_at + timedelta(seconds=30))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert len({e["event_id"] for e in first}) == len(first)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["alerts"][1].update(labels=["a"]), "alerts[1].labels"),
        (lambda d: d["alerts"][0].update(values={"B": "high"}), "alerts[0].values.B"),
        (lambda d: d["alerts"][0].update(values=[1, 2]), "alerts[0].values"),
        (lambda d: d.update(externalURL=5), "externalURL"),
        (lambda d: d["alerts"][1].update(status="alerting"), "alerts[1].status"),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field):
    doc = payload("grafana-firing.json")
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("grafana", doc, received_at=received_at)
    assert caught.value.field == field


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=fuzzing.json_values
    | fuzzing.damaged(fuzzing.load(NAMES[0]))
    | fuzzing.damaged(fuzzing.load(NAMES[2]))
)
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("grafana", doc)
