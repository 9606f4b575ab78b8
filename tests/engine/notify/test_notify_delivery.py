"""Delivery to real receivers on 127.0.0.1: webhooks (json://, form://), SMTP, MQTT.

Alerts fire through the API and a worker step; the deliverer runs on the test's clock, so
retries and group intervals are stepped through, never slept through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.notify.deliver import send_message


def rules(*channels: str, team: str = "platform") -> str:
    return f"""
rule source "{{{{ title }}}}"
  when kind == "alert"
  team {team}
  notify {", ".join(channels)}
end

silence maintenance "batch jobs are noisy"
  when service == "batch"
end
"""


def test_json_and_form_webhooks_get_the_firing_and_then_the_resolved_message(
    make_pipeline, http
) -> None:
    p = make_pipeline(rules("hook", "formhook"))
    p.add_channel("hook", http.url("json", "/json"))
    p.add_channel("formhook", http.url("form", "/form"))
    p.fire("Disk full on db-1", severity="critical", host="db-1")
    assert p.deliver().sent == 2
    [as_json], [as_form] = http.on("/json"), http.on("/form")
    assert as_json.json["title"] == "FIRING [CRITICAL] Disk full on db-1"
    assert "host: db-1" in as_json.json["message"]
    assert as_json.json["type"] == "failure"
    assert as_form.form["title"] == "FIRING [CRITICAL] Disk full on db-1"

    p.resolve("Disk full on db-1", severity="critical", host="db-1")
    assert p.deliver().sent == 0  # the group interval (60 s) holds the next message of the group
    p.clock.advance(seconds=60)
    assert p.deliver().sent == 2
    assert [r.json["title"] for r in http.on("/json")][
        -1
    ] == "RESOLVED [CRITICAL] Disk full on db-1"
    assert http.on("/json")[-1].json["type"] == "success"
    assert "RESOLVED" in http.on("/form")[-1].form["title"]
    rows = p.notifications()
    assert sorted((n["transition"], n["channel"], n["status"], n["attempts"]) for n in rows) == [
        ("fired", "formhook", "sent", 1),
        ("fired", "hook", "sent", 1),
        ("resolved", "formhook", "sent", 1),
        ("resolved", "hook", "sent", 1),
    ]


def test_email_reaches_a_real_smtp_server_as_html(make_pipeline, smtp) -> None:
    p = make_pipeline(rules("oncall_email"))
    p.add_channel("oncall_email", smtp.url())
    p.fire("Payments <failing>", severity="critical", description="checkout returns 500")
    assert p.deliver().sent == 1
    [mail] = smtp.messages
    assert mail["Subject"] == "FIRING [CRITICAL] Payments <failing>"
    assert mail["To"] == "oncall@example.com"
    html = next(part for part in mail.walk() if part.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()
    assert "Payments &lt;failing&gt;" in body
    assert "checkout returns 500" in body


@pytest.mark.integration  # Mosquitto runs outside the test process
def test_mqtt_reaches_mosquitto(make_pipeline, mqtt, wait) -> None:
    p = make_pipeline(rules("broker"))
    p.add_channel("broker", mqtt.url())
    p.fire("Queue backlog", severity="high")
    assert p.deliver().sent == 1
    assert wait(lambda: len(mqtt.messages) == 1)
    assert b"Queue backlog" in mqtt.messages[0]


def test_a_receiver_that_is_down_and_comes_back_gets_the_message_once(make_pipeline, http) -> None:
    p = make_pipeline(rules("hook"))
    p.add_channel("hook", http.url())
    http.stop()
    p.fire("API latency", severity="high")
    first = p.deliver()
    assert (first.sent, first.failed) == (0, 1)
    [row] = p.notifications()
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] == "2026-11-24T10:00:10Z"  # KLAXON_RETRY_BASE_S = 10 here
    p.clock.advance(seconds=5)
    assert p.deliver().claimed == 0  # not due yet
    http.start()  # back, on the same port
    p.clock.advance(seconds=5)
    assert p.deliver().sent == 1
    assert [r.json["title"] for r in http.received] == ["FIRING [HIGH] API latency"]
    detail = p.api.get(f"/api/v1/notifications/{row['id']}").json()
    assert detail["status"] == "sent"
    assert detail["attempts"] == 2
    assert [a["ok"] for a in detail["attempt_log"]] == [False, True]
    assert "Connection" in detail["attempt_log"][0]["error"]


def test_a_receiver_that_stays_down_ends_dead_and_critical_alerts_fall_back(
    make_pipeline, http, people
) -> None:
    p = make_pipeline(rules("primary"))
    people.team("platform", fallback_channel="backup")
    p.add_channel("primary", "json://127.0.0.1:9/never")
    p.add_channel("backup", http.url(path="/backup"))
    p.fire("Database down", severity="critical")
    p.fire("Cache slow", severity="medium", service="cache")
    for delay in (0, 10, 20, 40, 80):  # the backoff: 10 s doubled, five attempts
        p.clock.advance(seconds=delay)
        p.deliver()
    dead = p.notifications(status="dead")
    assert sorted((n["severity"], n["attempts"]) for n in dead) == [("critical", 5), ("medium", 5)]
    assert all("Connection" in n["last_error"] for n in dead)
    critical = next(n for n in dead if n["severity"] == "critical")
    detail = p.api.get(f"/api/v1/notifications/{critical['id']}").json()
    assert len(detail["attempt_log"]) == 5
    assert not any(a["ok"] for a in detail["attempt_log"])
    # Only the critical alert went to the team's fallback channel, at once.
    assert [r.json["title"] for r in http.on("/backup")] == ["FIRING [CRITICAL] Database down"]
    [fallback] = p.notifications(channel="backup")
    assert fallback["fallback_of"] == critical["id"]
    assert fallback["status"] == "sent"
    # Its resolution goes where the firing message arrived: the fallback channel.
    p.resolve("Database down", severity="critical")
    p.clock.advance(seconds=60)
    p.deliver()
    assert [r.json["title"] for r in http.on("/backup")][-1] == "RESOLVED [CRITICAL] Database down"
    assert p.notifications(channel="primary", transition="resolved") == []


def test_a_dead_delivery_retried_through_the_api_arrives_and_keeps_its_attempt_log(
    make_pipeline, http
) -> None:
    p = make_pipeline(rules("hook"))
    p.add_channel("hook", http.url())
    http.stop()
    p.fire("Queue stuck")
    for delay in (0, 10, 20, 40, 80):
        p.clock.advance(seconds=delay)
        p.deliver()
    [dead] = p.notifications(status="dead")
    r = p.api.post(f"/api/v1/notifications/{dead['id']}/retry")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("pending", 0)
    again = p.api.post(f"/api/v1/notifications/{dead['id']}/retry")
    assert (again.status_code, again.json()["field"]) == (422, "id")
    assert "it is pending" in again.json()["error"]
    assert p.api.post("/api/v1/notifications/999999/retry").status_code == 404
    http.start()
    # The API dates the retry by the wall clock; the deliverer runs on the test's clock.
    p.clock.set(max(p.clock.now, datetime.now(UTC)) + timedelta(seconds=1))
    assert p.deliver().sent == 1
    assert [r.json["title"] for r in http.received] == ["FIRING [HIGH] Queue stuck"]
    detail = p.api.get(f"/api/v1/notifications/{dead['id']}").json()
    assert detail["status"] == "sent"
    assert [a["ok"] for a in detail["attempt_log"]] == [False] * 5 + [True]


def test_resolved_goes_only_to_targets_that_got_the_firing_message(make_pipeline, http) -> None:
    p = make_pipeline(rules("good", "flaky"))
    p.add_channel("good", http.url(path="/good"))
    p.add_channel("flaky", http.url(path="/flaky"), grouping={"interval_s": 0})
    http.status = 500  # both refuse at first
    p.fire("Checkout errors", severity="high")
    p.deliver()
    http.status = 200
    p.clock.advance(seconds=10)
    p.deliver()  # both retried and delivered
    assert len(http.on("/good")) == len(http.on("/flaky")) == 2
    p.resolve("Checkout errors", severity="high")
    p.clock.advance(seconds=60)
    p.deliver()
    assert [r.json["title"].split()[0] for r in http.on("/good")] == [
        "FIRING",
        "FIRING",
        "RESOLVED",
    ]
    assert [r.json["title"].split()[0] for r in http.on("/flaky")] == [
        "FIRING",
        "FIRING",
        "RESOLVED",
    ]


def test_no_resolved_message_where_the_firing_one_never_arrived(make_pipeline, http) -> None:
    p = make_pipeline(rules("good", "broken"))
    p.add_channel("good", http.url(path="/good"))
    p.add_channel("broken", "json://127.0.0.1:9/x")
    p.fire("Login errors", severity="high")
    for delay in (0, 10, 20, 40, 80):
        p.clock.advance(seconds=delay)
        p.deliver()
    p.resolve("Login errors", severity="high")
    p.clock.advance(seconds=60)
    p.deliver()
    assert [n["status"] for n in p.notifications(channel="broken")] == ["dead"]
    assert [r.json["title"].split()[0] for r in http.on("/good")] == ["FIRING", "RESOLVED"]


def test_muted_alerts_and_repeats_do_not_notify(make_pipeline, http) -> None:
    p = make_pipeline(rules("hook"))
    p.add_channel("hook", http.url())
    p.fire("Nightly batch failed", service="batch")  # silenced by `maintenance`
    p.fire("API errors")
    p.fire("API errors")  # a repeat of the open alert
    p.fire("API errors")
    p.deliver()
    assert [r.json["title"] for r in http.received] == ["FIRING [HIGH] API errors"]
    muted = next(a for a in p.alerts() if a["service"] == "batch")
    assert muted["muted_by"] == ["maintenance"]
    assert p.notifications(alert_id=muted["id"]) == []


def test_a_team_without_notify_uses_its_default_channels(make_pipeline, http, people) -> None:
    p = make_pipeline('rule source "{{ title }}"\n  when kind == "alert"\n  team storage\nend\n')
    p.add_channel("storage_chat", http.url(path="/storage"))
    people.team("storage", default_channels=["storage_chat"])
    p.fire("Disk latency")
    p.deliver()
    assert [r.json["title"] for r in http.on("/storage")] == ["FIRING [HIGH] Disk latency"]
    [row] = p.notifications()
    assert row["target"] == "team:storage"


def test_unknown_targets_are_dead_rows_that_say_why(make_pipeline) -> None:
    p = make_pipeline(rules("nowhere", "oncall:nobody", "user:ghost"))
    p.fire("Something")
    rows = {n["target"]: n for n in p.notifications()}
    assert rows["nowhere"]["last_error"] == "no channel, team or user named 'nowhere'"
    assert rows["oncall:nobody"]["last_error"] == "no schedule named 'nobody'"
    assert rows["user:ghost"]["last_error"] == "no active user 'ghost'"
    assert {n["status"] for n in rows.values()} == {"dead"}


def test_send_message_delivers_a_report_with_its_attachment(db, smtp, tmp_path: Path, api) -> None:
    api.post("/api/v1/channels", json={"name": "reports", "url": smtp.url("managers@example.com")})
    pdf = tmp_path / "weekly.pdf"
    pdf.write_bytes(b"%PDF-1.4 weekly report")
    assert send_message(db, "reports", "Weekly report", "MTTA fell to 4 minutes.", [pdf]) is True
    [mail] = smtp.messages
    assert mail["Subject"] == "Weekly report"
    parts = {part.get_filename(): part for part in mail.walk() if part.get_filename()}
    assert parts["weekly.pdf"].get_payload(decode=True) == b"%PDF-1.4 weekly report"
    [row] = api.get("/api/v1/notifications", params={"transition": "report"}).json()["items"]
    assert row["status"] == "sent"
    assert row["attempts"] == 1
    api.post(
        "/api/v1/channels",
        json={"name": "down", "url": "mailto://127.0.0.1:9?from=a@example.com&to=b@example.com"},
    )
    assert send_message(db, "down", "Weekly report", "again", None) is False
    failed = api.get("/api/v1/notifications", params={"channel": "down"}).json()["items"]
    assert [(n["status"], n["attempts"]) for n in failed] == [("dead", 1)]


def test_a_channel_saved_under_another_secret_key_ends_dead_saying_so(
    make_pipeline, http, monkeypatch
) -> None:
    p = make_pipeline(rules("hook"))
    p.add_channel("hook", http.url())
    p.fire("Disk full")
    monkeypatch.setenv("KLAXON_SECRET_KEY", "a-different-key-than-the-one-it-was-saved-with")
    assert p.deliver().dead == 1
    monkeypatch.setenv("KLAXON_SECRET_KEY", "test-secret-key-for-klaxon-tests-only")
    [row] = p.notifications()
    assert row["status"] == "dead"
    assert "KLAXON_SECRET_KEY differs" in row["last_error"]
    assert http.received == []
