"""The generic JSON webhook: one event, a list, or {"events": [...]} → canonical events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash
from tests.engine.normalize import fuzzing

FULL = {
    "event_id": "deploy-771",
    "ts": "2026-03-01T10:00:00.123456789Z",
    "kind": "event",
    "source": "jenkins",
    "source_id": "job/deploy#771",
    "fingerprint": "deploy-api-prod",
    "title": "Deploy failed",
    "description": "step 3 of 5",
    "severity": "high",
    "status": "firing",
    "service": "api",
    "environment": "prod",
    "host": "ci-2",
    "value": 3,
    "labels": {"team": "platform", "attempt": 2},
}


def test_a_full_event_maps_onto_the_columns(rows, received_at):
    [ev] = rows("webhook", orjson.dumps(FULL))
    assert ev["event_id"] == "deploy-771"
    assert ev["ts"] == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert ev["received_at"] == received_at
    assert (ev["kind"], ev["source"], ev["source_id"]) == ("event", "jenkins", "job/deploy#771")
    assert (ev["fingerprint"], ev["title"], ev["description"]) == (
        "deploy-api-prod",
        "Deploy failed",
        "step 3 of 5",
    )
    assert (ev["severity"], ev["status"]) == ("high", "firing")
    assert (ev["service"], ev["environment"], ev["host"], ev["value"]) == (
        "api",
        "prod",
        "ci-2",
        3.0,
    )
    assert ev["labels"] == {"team": "platform", "attempt": "2"}
    assert orjson.loads(ev["raw"]) == FULL


def test_defaults_kind_alert_receive_time_and_the_design_fingerprint(rows, received_at):
    [ev] = rows("webhook", {"title": "disk full", "service": "db", "host": "db-1"})
    assert ev["kind"] == "alert"
    assert ev["ts"] == received_at
    assert (ev["source"], ev["severity"], ev["status"]) == ("webhook", "medium", "firing")
    assert ev["value"] is None
    # DESIGN.md §3: no fingerprint → hash of source, title, service, environment, host
    assert ev["fingerprint"] == identity_hash("webhook", "disk full", "db", "", "db-1")


def test_a_list_and_a_batch_give_one_event_per_item(rows):
    items = [{"title": "a", "ts": 1767225600}, {"title": "b", "ts": 1767225600000}]
    as_list = rows("webhook", items)
    as_batch = rows("webhook", {"events": items})
    assert [e["title"] for e in as_list] == ["a", "b"]
    assert as_list == as_batch
    assert {e["ts"] for e in as_list} == {datetime(2026, 1, 1, tzinfo=UTC)}  # epoch s and ms
    assert rows("webhook", []) == []


def test_unknown_top_level_keys_become_labels_and_explicit_labels_win(rows):
    [ev] = rows(
        "webhook",
        {
            "title": "x",
            "region": "eu-1",
            "count": 3,
            "ok": False,
            "nested": {"a": [1]},
            "team": "ignored",
            "labels": {"team": "core"},
            "received_at": "2000-01-01T00:00:00Z",
        },
    )
    assert ev["labels"] == {
        "region": "eu-1",
        "count": "3",
        "ok": "false",
        "nested": '{"a":[1]}',
        "team": "core",
    }


def test_severity_synonyms_and_case(rows):
    evs = rows("webhook", [{"severity": s} for s in ("CRITICAL", "warning", "error", "Info")])
    assert [e["severity"] for e in evs] == ["critical", "medium", "high", "info"]


def test_id_is_the_event_id_too(rows):
    assert rows("webhook", {"id": 42, "title": "x"})[0]["event_id"] == "42"


def test_without_an_id_a_retried_post_gives_the_same_event_ids(rows, received_at):
    items = [{"title": "a", "labels": {"x": "1", "y": "2"}}, {"title": "b"}]
    reordered = [{"labels": {"y": "2", "x": "1"}, "title": "a"}, {"title": "b"}]
    first = [e["event_id"] for e in rows("webhook", items)]
    again = [e["event_id"] for e in rows("webhook", reordered, at=received_at + timedelta(hours=1))]
    assert first == again  # canonical JSON: key order does not matter
    assert len(set(first)) == 2
    assert all(i.startswith("webhook:") for i in first)


def test_a_resolve_for_an_unknown_identity_is_fine(rows):
    [ev] = rows("webhook", {"fingerprint": "never-seen", "status": "resolved"})
    assert ev["status"] == "resolved"


@pytest.mark.parametrize(
    ("data", "field", "index"),
    [
        ({"ts": "yesterday"}, "ts", None),
        ({"ts": "9" * 5000}, "ts", None),
        ({"ts": 10**30}, "ts", None),
        ({"ts": "0001-01-01T00:00:00+02:00"}, "ts", None),
        ({"kind": "log"}, "kind", None),
        ({"status": "ok"}, "status", None),
        ({"severity": "sev1"}, "severity", None),
        ({"value": "high"}, "value", None),
        ({"labels": ["a"]}, "labels", None),
        ({"title": {"en": "x"}}, "title", None),
        ([{"title": "ok"}, {"ts": True}], "[1].ts", 1),
        ({"events": [{}, {}, "event"]}, "events[2]", 2),
        ({"events": {"title": "x"}}, "events", None),
        ("just text", "$", None),
        (7, "$", None),
    ],
)
def test_invalid_events_name_the_field(received_at, data, field, index):
    with pytest.raises(EventValidationError) as caught:
        normalize("webhook", json.dumps(data), received_at=received_at)
    assert caught.value.field == field
    assert caught.value.index == index


@pytest.mark.hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=fuzzing.json_values | fuzzing.damaged(FULL) | fuzzing.damaged({"events": [FULL, FULL]}))
def test_fuzzed_payloads_normalize_or_name_the_field(doc):
    fuzzing.assert_normalizes_or_refuses("webhook", doc)
