"""Templates per channel kind, safe with missing fields; what Apprise is handed, caught here."""

from __future__ import annotations

from typing import Any

import apprise
import pytest

from engine.notify.templates import SMS_LENGTH, render_many, render_one
from engine.notify.transport import send

ALERT = {
    "id": 42,
    "rule": "api_errors",
    "title": "API errors at 7%",
    "severity": "critical",
    "service": "api",
    "environment": "prod",
    "host": "web-3",
    "team": "platform",
    "labels": {"runbook": "https://wiki.example/api", "region": "eu-1"},
    "value": 0.07,
    "description": "5xx above 5% for 2 minutes",
}

CAPTURED: list[dict[str, Any]] = []


@apprise.decorators.notify(on="klaxoncapture", name="Klaxon test capture")
def _capture(body: str, title: str, notify_type: str, meta: dict[str, Any], **_: Any) -> bool:
    CAPTURED.append({"title": title, "body": body, "type": notify_type, "meta": meta})
    return meta.get("host") != "refuse"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "chat",
            [
                "**FIRING** · critical · API errors at 7%",
                "- service: `api`",
                "- runbook: https://wiki.example/api",
            ],
        ),
        ("email", ["<h2", "FIRING: API errors at 7%", '<th align="left">host</th><td>web-3</td>']),
        (
            "webhook",
            [
                "FIRING [critical] API errors at 7%",
                "environment: prod",
                "value: 0.07",
                "rule api_errors · alert #42",
            ],
        ),
        ("push", ["critical · api · prod · web-3 · platform · #42"]),
        ("sms", ["FIRING CRITICAL API errors at 7% (api) #42"]),
    ],
)
def test_each_kind_has_its_own_template(kind: str, expected: list[str]) -> None:
    title, body = render_one(kind, "fired", ALERT)
    for text in expected:
        assert text in body, body
    assert title == ("" if kind == "sms" else "FIRING [CRITICAL] API errors at 7%")


def test_email_escapes_html_and_chat_does_not_need_to() -> None:
    _, html = render_one("email", "fired", {**ALERT, "title": "<script>x</script>"})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_missing_fields_render_empty_and_odd_values_never_lose_the_message() -> None:
    title, body = render_one("chat", "escalated", {"id": 7}, level=2)
    assert title == "ESCALATED (level 2) alert"
    assert "alert #7" in body
    title, body = render_one("webhook", "fired", {"id": 8, "title": "x", "labels": "not a mapping"})
    assert title == "FIRING x"
    assert "alert #8" in body


def test_sms_is_short() -> None:
    _, body = render_one("sms", "fired", {**ALERT, "title": "x" * 400})
    assert len(body) == SMS_LENGTH
    assert body.endswith("…")


def test_a_grouped_message_lists_firing_and_resolved_alerts() -> None:
    items = [
        {"transition": "fired", "alert": {**ALERT, "id": i, "title": f"node-{i} down"}}
        for i in range(3)
    ]
    items.append({"transition": "resolved", "alert": {**ALERT, "id": 9, "title": "node-9 down"}})
    title, body = render_many("chat", "platform", items)
    assert title == "platform: 3 firing, 1 resolved"
    assert "**Firing (3)**" in body
    assert "**Resolved (1)**" in body
    assert all(f"node-{i} down (api) #{i}" in body for i in (0, 1, 2, 9))
    _, short = render_many("sms", "platform", items)
    assert short == "platform: 3 firing, 1 resolved"
    many = [{"transition": "fired", "alert": {"id": i, "title": f"t{i}"}} for i in range(30)]
    _, push = render_many("push", "platform", many)
    assert push.endswith("…and 10 more")


def test_apprise_is_handed_the_title_body_and_type() -> None:
    CAPTURED.clear()
    title, body = render_one("chat", "fired", ALERT)
    outcome = send("klaxoncapture://accept", title, body, kind="chat", notify_type="failure")
    assert outcome.ok
    assert outcome.error is None
    assert CAPTURED[0]["title"] == title
    assert CAPTURED[0]["body"] == body
    assert CAPTURED[0]["type"] == "failure"
    refused = send("klaxoncapture://refuse", "t", "b", kind="chat")
    assert refused.ok is False
    assert refused.error
