"""Escalation: unacknowledged alerts climb their ladder on the wall clock; acknowledging stops it.
On-call targets page whoever the rotation names at that instant, across DST changes too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine.notify.escalation import escalate_due
from engine.store.models import Escalation

RULES = """
rule source "{{ title }}"
  when kind == "alert"
  team platform
end
"""


@pytest.fixture
def oncall_setup(make_pipeline, http, people, api):
    """Team platform (default channel `team_chat`, policy `platform_pager`), users alice, bob and
    carol with their own receivers, and a daily rotation `primary` (alice, bob) at 09:00 Berlin."""
    p = make_pipeline(RULES)
    for name in ("team_chat", "alice_phone", "bob_phone", "carol_phone"):
        p.add_channel(name, http.url(path=f"/{name}"), grouping={"interval_s": 0})
    for user in ("alice", "bob", "carol"):
        people.user(f"{user}@example.com", contact_channels=[f"{user}_phone"], tz="Europe/Berlin")
    r = api.post(
        "/api/v1/schedules",
        json={
            "name": "primary",
            "tz": "Europe/Berlin",
            "rotation": {
                "kind": "daily",
                "users": ["alice@example.com", "bob@example.com"],
                "start": "2026-11-23",
                "handoff": "09:00",
            },
        },
    )
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/v1/escalation-policies",
        json={
            "name": "platform_pager",
            "levels": [
                {"delay_s": 300, "targets": ["oncall:primary"]},
                {"delay_s": 900, "targets": ["user:carol@example.com", "team_chat"]},
            ],
        },
    )
    assert r.status_code == 201, r.text
    people.team("platform", default_channels=["team_chat"], escalation_policy="platform_pager")
    return p


def titles(http, path: str) -> list[str]:
    return [r.json["title"] for r in http.on(path)]


def test_an_unacknowledged_alert_climbs_every_level_and_its_history_says_so(
    oncall_setup, http
) -> None:
    p = oncall_setup
    p.fire("Orders failing", severity="critical")  # 2026-11-24 10:00Z: bob's day (from 23rd, alice)
    p.deliver()
    assert titles(http, "/team_chat") == ["FIRING [CRITICAL] Orders failing"]
    p.clock.advance(seconds=299)
    assert escalate_due(p.db, p.settings, p.clock) == 0
    p.clock.advance(seconds=1)
    assert escalate_due(p.db, p.settings, p.clock) == 1
    p.deliver()
    assert titles(http, "/bob_phone") == ["ESCALATED (level 1) [CRITICAL] Orders failing"]
    assert titles(http, "/alice_phone") == []
    [alert] = p.alerts()
    assert alert["escalation_level"] == 1
    p.clock.advance(seconds=600)
    assert escalate_due(p.db, p.settings, p.clock) == 1
    p.deliver()
    assert titles(http, "/carol_phone") == ["ESCALATED (level 2) [CRITICAL] Orders failing"]
    assert titles(http, "/team_chat")[-1] == "ESCALATED (level 2) [CRITICAL] Orders failing"
    p.clock.advance(hours=2)
    assert escalate_due(p.db, p.settings, p.clock) == 0  # the ladder has no level 3
    history = p.api.get(f"/api/v1/alerts/{alert['id']}/history").json()
    escalations = [h for h in history if h["action"] == "escalated"]
    assert [h["details"]["level"] for h in escalations] == [1, 2]
    assert escalations[0]["actor"] == "klaxon"
    assert "oncall:primary" in escalations[0]["note"]
    # Resolved: everyone who was paged hears it is over.
    p.resolve("Orders failing", severity="critical")
    p.deliver()
    for path in ("/team_chat", "/bob_phone", "/carol_phone"):
        assert titles(http, path)[-1] == "RESOLVED [CRITICAL] Orders failing", path
    assert titles(http, "/alice_phone") == []


@pytest.mark.parametrize("action", ["acknowledge", "investigate", "resolve"])
def test_acknowledging_stops_the_climb(oncall_setup, http, action) -> None:
    p = oncall_setup
    p.fire("Orders failing", severity="critical")
    p.deliver()
    [alert] = p.alerts()
    assert p.api.post(f"/api/v1/alerts/{alert['id']}/{action}").status_code == 200
    p.clock.advance(hours=1)
    assert escalate_due(p.db, p.settings, p.clock) == 0
    p.deliver()
    assert titles(http, "/bob_phone") == []
    assert titles(http, "/carol_phone") == []
    with p.db.read() as conn:
        assert conn.execute(select(Escalation.status)).scalar_one() == "stopped"


def test_a_rules_escalate_clauses_replace_the_team_policy(
    oncall_setup, http, make_pipeline
) -> None:
    p = make_pipeline(
        RULES.replace("team platform", "team platform\n  escalate after 2m to carol_phone")
    )
    p.fire("Queue stuck", severity="high")
    p.clock.advance(minutes=2)
    assert escalate_due(p.db, p.settings, p.clock) == 1
    p.clock.advance(minutes=30)
    assert escalate_due(p.db, p.settings, p.clock) == 0
    p.deliver()
    assert titles(http, "/carol_phone") == ["ESCALATED (level 1) [HIGH] Queue stuck"]
    assert titles(http, "/bob_phone") == []


def test_a_rule_without_team_or_notify_still_escalates_by_its_clauses(
    oncall_setup, http, make_pipeline
) -> None:
    """Nobody is told when it fires (no team, no notify), but its ladder still runs."""
    p = make_pipeline(RULES.replace("team platform", "escalate after 2m to carol_phone"))
    p.fire("Disk filling", severity="high")
    p.deliver()
    assert http.received == []
    p.clock.advance(minutes=2)
    assert escalate_due(p.db, p.settings, p.clock) == 1
    p.deliver()
    assert titles(http, "/carol_phone") == ["ESCALATED (level 1) [HIGH] Disk filling"]


def test_muted_alerts_are_not_escalated(oncall_setup, http, make_pipeline) -> None:
    p = make_pipeline(RULES + '\nsilence all "maintenance"\n  when team == "platform"\nend\n')
    p.fire("Orders failing", severity="critical")
    p.clock.advance(hours=1)
    assert escalate_due(p.db, p.settings, p.clock) == 0
    p.deliver()
    assert http.received == []


def test_escalation_after_a_dst_change_pages_whoever_is_on_call_by_local_time(
    oncall_setup, http
) -> None:
    p = oncall_setup
    # Sunday 2026-03-29, clocks went forward at 01:00Z: 09:00 Berlin is now 07:00Z, not 08:00Z.
    p.clock.set(datetime(2026, 3, 29, 6, 56, tzinfo=UTC))  # 08:56 CEST: still Saturday's shift
    day = p.api.get("/api/v1/oncall", params={"at": "2026-03-29T06:56:00Z"}).json()[0]
    assert day["now"]["user"] == "alice@example.com"
    assert (day["now"]["end"], day["next"]["user"]) == ("2026-03-29T07:00:00Z", "bob@example.com")
    p.fire("Orders failing", severity="critical")
    p.clock.advance(minutes=5)  # 07:01Z = 09:01 CEST: bob's shift began a minute ago
    assert escalate_due(p.db, p.settings, p.clock) == 1
    p.deliver()
    assert titles(http, "/bob_phone") == ["ESCALATED (level 1) [CRITICAL] Orders failing"]
    assert titles(http, "/alice_phone") == []


def test_escalation_timers_survive_a_restart(oncall_setup, http, make_pipeline) -> None:
    p = oncall_setup
    p.fire("Orders failing", severity="critical")
    p.deliver()
    # A new process: nothing in memory, only the store.
    q = make_pipeline(RULES)
    q.clock.advance(minutes=5)
    assert escalate_due(q.db, q.settings, q.clock) == 1
    q.deliver()
    assert titles(http, "/bob_phone") == ["ESCALATED (level 1) [CRITICAL] Orders failing"]
