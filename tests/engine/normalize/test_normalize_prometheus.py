"""Alertmanager webhook bodies (real captures) → canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.normalize.labelset import labels_fingerprint
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

FIRING_RESOLVED = [
    (
        "alertmanager-01-firing-PeersManualPush.json",
        "alertmanager-06-resolved-PeersManualPush.json",
    ),
    (
        "alertmanager-02-firing-PeersAlwaysFiring.json",
        "alertmanager-07-resolved-PeersAlwaysFiring.json",
    ),
    (
        "alertmanager-04-firing-PeersDemoErrorRatio.json",
        "alertmanager-05-resolved-PeersDemoErrorRatio.json",
    ),
]
ALL = [name for pair in FIRING_RESOLVED for name in pair]


def test_firing_alert_reads_every_canonical_field(rows, body, payload, received_at):
    [ev] = rows("prometheus", body("alertmanager-01-firing-PeersManualPush.json"))
    assert ev["ts"] == datetime(2026, 11, 23, 9, 15, 22, tzinfo=UTC)
    assert ev["received_at"] == received_at
    assert ev["kind"] == "alert"
    assert ev["source"] == "prometheus"
    assert ev["source_id"] == "c1fc6af1df0fd4f3"
    assert ev["fingerprint"] == identity_hash("prometheus", "c1fc6af1df0fd4f3")
    assert ev["status"] == "firing"
    assert ev["severity"] == "critical"
    assert ev["title"] == "PeersManualPush"
    assert ev["description"] == "resolves after resolve_timeout"
    assert ev["service"] == "batch"
    assert ev["environment"] == ""
    assert ev["host"] == "job-runner-1"
    assert ev["value"] is None
    assert ev["labels"] == {
        "alertname": "PeersManualPush",
        "instance": "job-runner-1",
        "service": "batch",
        "severity": "critical",
        "annotation_description": "resolves after resolve_timeout",
        "annotation_summary": "Pushed by curl with no endsAt",
        "generatorURL": "http://127.0.0.1/manual",
    }
    assert (
        orjson.loads(ev["raw"])
        == payload("alertmanager-01-firing-PeersManualPush.json")["alerts"][0]
    )


@pytest.mark.parametrize(("firing", "resolved"), FIRING_RESOLVED)
def test_fire_and_resolve_share_the_fingerprint(rows, body, payload, firing, resolved):
    [fire] = rows("prometheus", body(firing))
    [done] = rows("prometheus", body(resolved))
    assert (fire["status"], done["status"]) == ("firing", "resolved")
    assert fire["fingerprint"] == done["fingerprint"]
    assert fire["source_id"] == done["source_id"]
    assert fire["event_id"] != done["event_id"]
    # ts is startsAt when firing and endsAt when resolved
    alert = payload(resolved)["alerts"][0]
    assert fire["ts"] == datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    assert done["ts"] > fire["ts"]


def test_resolved_ts_is_ends_at_with_nine_fraction_digits(rows, body):
    [ev] = rows("prometheus", body("alertmanager-06-resolved-PeersManualPush.json"))
    assert ev["ts"] == datetime(2026, 11, 23, 9, 15, 37, 633138, tzinfo=UTC)


def test_warning_label_is_medium_and_instance_is_the_host(rows, body):
    [ev] = rows("prometheus", body("alertmanager-04-firing-PeersDemoErrorRatio.json"))
    assert ev["severity"] == "medium"
    assert ev["host"] == "127.0.0.1:19095"
    assert ev["service"] == "gateway"
    assert ev["description"] == "Error ratio 0.5 above 5% on gateway"  # summary, no description
    assert ev["labels"]["annotation_runbook_url"] == "https://example.invalid/runbooks/error-ratio"


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "high"),
        ("HIGH", "high"),
        ("major", "high"),
        ("warning", "medium"),
        ("warn", "medium"),
        ("info", "info"),
        ("none", "info"),
        ("minor", "low"),
        ("low", "low"),
        ("something-else", "medium"),
        (None, "medium"),
    ],
)
def test_severity_label_mapping(rows, payload, word, severity):
    doc = payload("alertmanager-01-firing-PeersManualPush.json")
    if word is None:
        del doc["alerts"][0]["labels"]["severity"]
    else:
        doc["alerts"][0]["labels"]["severity"] = word
    [ev] = rows("prometheus", doc)
    assert ev["severity"] == severity


def test_each_alert_keeps_its_own_status_not_the_groups(rows, payload):
    doc = payload("alertmanager-04-firing-PeersDemoErrorRatio.json")
    resolved = payload("alertmanager-07-resolved-PeersAlwaysFiring.json")["alerts"][0]
    doc["status"] = "firing"
    doc["alerts"].append(resolved)
    evs = rows("prometheus", doc)
    assert [e["status"] for e in evs] == ["firing", "resolved"]


def test_missing_fingerprint_is_computed_as_alertmanager_does(rows, payload):
    for name in ALL:
        doc = payload(name)
        given = doc["alerts"][0].pop("fingerprint")
        assert labels_fingerprint(doc["alerts"][0]["labels"]) == given
        [ev] = rows("prometheus", doc)
        assert ev["source_id"] == given


def test_alias_alertmanager_reads_the_same(rows, body):
    name = "alertmanager-02-firing-PeersAlwaysFiring.json"
    assert rows("alertmanager", body(name)) == rows("prometheus", body(name))


@pytest.mark.parametrize("name", ALL)
def test_a_retried_delivery_gives_the_same_event_ids(rows, body, name, received_at):
    first = rows("prometheus", body(name))
    again = rows("prometheus", body(name), at=received_at + timedelta(minutes=5))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]


def test_resolved_without_ends_at_uses_receive_time_but_a_stable_id(rows, payload, received_at):
    doc = payload("alertmanager-05-resolved-PeersDemoErrorRatio.json")
    doc["alerts"][0]["endsAt"] = "0001-01-01T00:00:00Z"
    [first] = rows("prometheus", doc)
    [again] = rows("prometheus", doc, at=received_at + timedelta(hours=1))
    assert first["ts"] == received_at
    assert first["event_id"] == again["event_id"]


def test_an_empty_group_gives_no_events(rows):
    assert rows("prometheus", {"version": "4", "status": "firing", "alerts": []}) == []


@pytest.mark.parametrize(
    ("edit", "field", "index"),
    [
        (lambda d: d.pop("alerts"), "alerts", None),
        (lambda d: d.update(alerts={"a": 1}), "alerts", None),
        (lambda d: d["alerts"].append({"status": "firing", "labels": []}), "alerts[1].labels", 1),
        (lambda d: d["alerts"][0].update(status="pending"), "alerts[0].status", 0),
        (lambda d: d["alerts"][0].pop("status"), "alerts[0].status", 0),
        (lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt", 0),
        (lambda d: d["alerts"][0].pop("startsAt"), "alerts[0].startsAt", 0),
        (lambda d: d["alerts"][0].update(annotations="x"), "alerts[0].annotations", 0),
        (lambda d: d["alerts"][0].update(fingerprint=7), "alerts[0].fingerprint", 0),
        (lambda d: d["alerts"].__setitem__(0, "alert"), "alerts[0]", 0),
    ],
)
def test_invalid_payloads_name_the_field(payload, received_at, edit, field, index):
    doc = payload("alertmanager-01-firing-PeersManualPush.json")
    edit(doc)
    with pytest.raises(EventValidationError) as caught:
        normalize("prometheus", doc, received_at=received_at)
    assert caught.value.field == field
    assert caught.value.index == index


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=fuzzing.json_values
    | fuzzing.damaged(fuzzing.load(ALL[0]))
    | fuzzing.damaged(fuzzing.load(ALL[3]))
)
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("prometheus", doc)
