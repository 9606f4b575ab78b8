"""Noise control: grouping turns a storm into a few messages, rate limits fold the excess into
a digest, quiet hours hold non-critical messages, and the repeat interval reminds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from engine.notify.repeats import repeat_due

TEAM_RULES = """
rule source "{{ title }}"
  when kind == "alert"
  team platform
  notify hook
end
"""

USER_RULES = """
rule source "{{ title }}"
  when kind == "alert"
  notify user:alice
end
"""


def _alert_ids(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"#(\d+)", text)]


def test_a_storm_of_500_alerts_in_a_minute_becomes_a_handful_of_grouped_messages(
    make_pipeline, http
) -> None:
    p = make_pipeline(TEAM_RULES)
    p.add_channel("hook", http.url())
    for second in range(0, 60, 6):  # ten bursts of 50 alerts, one every 6 s
        p.post(
            [
                {"title": f"node-{second * 10 + i} unreachable", "host": f"node-{second * 10 + i}"}
                for i in range(50)
            ]
        )
        p.deliver()
        p.clock.advance(seconds=6)
    p.clock.advance(seconds=60)
    p.deliver()
    messages = http.received
    assert 2 <= len(messages) <= 5, [m.json["title"] for m in messages]
    listed = [_alert_ids(m.json["message"]) for m in messages]
    everyone = sorted(i for ids in listed for i in ids)
    assert everyone == sorted(a["id"] for a in p.alerts())
    assert len(everyone) == 500
    for m, ids in zip(messages, listed, strict=True):  # each message names its own alerts
        if len(ids) > 1:
            assert m.json["title"] == f"platform: {len(ids)} firing"
    rows = p.notifications(status="sent")
    assert len(rows) == 500
    assert {r["group_key"] for r in rows} == {"platform|hook"}


def test_a_group_larger_than_a_delivery_round_still_goes_as_one_message(
    make_pipeline, http
) -> None:
    p = make_pipeline(TEAM_RULES)
    p.add_channel("hook", http.url())
    p.fire("first of the storm")
    assert p.deliver().sent == 1  # a quiet group's first message goes at once
    p.post([{"title": f"node-{i} down", "host": f"node-{i}"} for i in range(120)])
    p.clock.advance(seconds=60)  # the group interval
    r = p.deliverer.deliver_due(50)  # a round of 50 rows takes the whole group
    assert (r.messages, r.sent) == (1, 120)
    assert len(http.received) == 2
    assert http.received[-1].json["title"] == "platform: 120 firing"
    assert len(_alert_ids(http.received[-1].json["message"])) == 120


def test_a_rate_limit_folds_the_excess_into_one_digest(make_pipeline, http) -> None:
    p = make_pipeline(TEAM_RULES)
    p.add_channel("hook", http.url(), rate_limit_per_min=3, grouping={"interval_s": 0})
    p.post(
        [
            {"title": f"check {i} failed", "severity": "critical" if i == 9 else "medium"}
            for i in range(10)
        ]
    )
    first = p.deliver()
    assert (first.messages, first.sent, first.deferred) == (3, 3, 7)
    # The most severe goes within the limit; three go in parallel, in no particular order.
    assert "FIRING [CRITICAL] check 9 failed" in {r.json["title"] for r in http.received}
    p.clock.advance(seconds=30)
    assert p.deliver().claimed == 0
    p.clock.advance(seconds=30)
    assert p.deliver().messages == 1
    digest = http.received[-1].json
    assert digest["title"].startswith(
        "Digest for hook (7 notifications held back by its limit of 3"
    )
    assert len(_alert_ids(digest["message"])) == 7
    assert len(http.received) == 4
    assert {r["status"] for r in p.notifications()} == {"sent"}


def test_quiet_hours_hold_non_critical_messages_until_they_end(make_pipeline, http, people) -> None:
    p = make_pipeline(USER_RULES)
    p.add_channel("alice_phone", http.url(path="/alice"))
    people.user(
        "alice@example.com",
        tz="Europe/Berlin",
        contact_channels=["alice_phone"],
        quiet_hours={"days": "daily", "start": "22:00", "end": "07:00"},
    )
    p.clock.set(datetime(2026, 11, 24, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    p.fire("Backups slow", severity="medium")
    p.fire("Site down", severity="critical", service="web")
    p.deliver()
    assert [r.json["title"] for r in http.on("/alice")] == ["FIRING [CRITICAL] Site down"]
    held = p.notifications(status="held")
    assert [(n["subject"], n["next_attempt_at"]) for n in held] == [
        ("FIRING [MEDIUM] Backups slow", "2026-11-25T06:00:00Z")  # 07:00 Berlin
    ]
    p.clock.set(datetime(2026, 11, 25, 5, 59, tzinfo=UTC))
    assert p.deliver().sent == 0
    p.clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    assert p.deliver().sent == 1
    assert http.on("/alice")[-1].json["title"] == "FIRING [MEDIUM] Backups slow"


def test_an_alert_resolved_during_quiet_hours_wakes_nobody_in_the_morning(
    make_pipeline, http, people
) -> None:
    p = make_pipeline(USER_RULES)
    p.add_channel("alice_phone", http.url(path="/alice"))
    people.user(
        "alice@example.com",
        tz="Europe/Berlin",
        contact_channels=["alice_phone"],
        quiet_hours={"days": "mon-fri", "start": "22:00", "end": "07:00"},
    )
    p.clock.set(datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
    p.fire("Backups slow", severity="low")
    p.clock.advance(minutes=20)
    p.resolve("Backups slow", severity="low")
    p.clock.set(datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    p.deliver()
    assert http.received == []
    [row] = p.notifications()
    assert (row["status"], row["last_error"]) == ("suppressed", "resolved during quiet hours")


@pytest.mark.parametrize("acknowledge", [False, True])
def test_still_firing_alerts_are_repeated_until_acknowledged(
    make_pipeline, http, acknowledge
) -> None:
    p = make_pipeline(TEAM_RULES)
    p.add_channel("hook", http.url(), grouping={"wait_s": 0, "interval_s": 30, "repeat_s": 3600})
    p.fire("Replication lag")
    p.fire("Disk 91%")
    p.deliver()
    assert len(http.received) == 1
    if acknowledge:
        first = next(a for a in p.alerts() if a["title"] == "Replication lag")
        assert p.api.post(f"/api/v1/alerts/{first['id']}/acknowledge").status_code == 200
    p.clock.advance(minutes=59)
    assert repeat_due(p.db, p.settings, p.clock) == 0
    p.clock.advance(minutes=1)
    assert repeat_due(p.db, p.settings, p.clock) == (1 if acknowledge else 2)
    p.deliver()
    reminder = http.received[-1].json
    assert reminder["title"] == (
        "STILL FIRING [HIGH] Disk 91%" if acknowledge else "platform: 2 firing"
    )
    assert "Disk 91%" in reminder["message"]
    assert ("Replication lag" in reminder["message"]) is not acknowledge
    assert {r["transition"] for r in p.notifications(transition="repeated")} == {"repeated"}
