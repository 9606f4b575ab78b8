"""`klaxon oncall` and `klaxon notify`: who is on call, deliveries, a retry, the jobs run once."""

from __future__ import annotations

import pytest

from engine.cli import main

RULES = 'rule source "{{ title }}"\n  when kind == "alert"\n  team platform\n  notify hook\nend\n'


@pytest.fixture
def run(db_url, monkeypatch):
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)

    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as done:
            main(list(argv))
        return int(done.value.code or 0)

    return run


def test_oncall_prints_now_and_next_in_the_schedules_local_time(api, people, run, capsys) -> None:
    for user in ("ann", "ben"):
        people.user(f"{user}@example.com")
    body = {
        "name": "primary",
        "tz": "Europe/Berlin",
        "rotation": {
            "kind": "daily",
            "users": ["ann@example.com", "ben@example.com"],
            "start": "2026-03-27",
            "handoff": "09:00",
        },
    }
    assert api.post("/api/v1/schedules", json=body).status_code == 201
    # Across the spring DST change: the hand-off stays at 09:00 local, CET then CEST.
    assert run("oncall", "primary", "--at", "2026-03-28T12:00:00Z") == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "primary (Europe/Berlin)",
        "  now   ben@example.com              until 2026-03-29 09:00 CEST  (rotation)",
        "  next  ann@example.com              from  2026-03-29 09:00 CEST until 2026-03-30 09:00"
        " CEST  (rotation)",
    ]
    assert run("oncall", "--at", "2026-03-28T07:00:00Z") == 0
    assert (
        "  now   ann@example.com              until 2026-03-28 09:00 CET" in capsys.readouterr().out
    )
    assert run("oncall", "--at", "yesterday") == 2
    assert "--at: 'yesterday' is not an instant" in capsys.readouterr().err
    assert run("oncall", "--at", "2026-03-28T12:00:00") == 2
    assert "has no offset" in capsys.readouterr().err
    assert run("oncall", "ghosts") == 2
    assert "no schedule named 'ghosts'" in capsys.readouterr().err


def test_notify_lists_shows_retries_and_runs_the_jobs(make_pipeline, http, run, capsys) -> None:
    p = make_pipeline(RULES)
    p.add_channel("hook", http.url(), grouping={"interval_s": 0})
    http.stop()
    p.fire("Queue stuck")
    for delay in (0, 10, 20, 40, 80):
        p.clock.advance(seconds=delay)
        p.deliver()
    [dead] = p.notifications(status="dead")
    assert run("notify", "list", "--status", "dead") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split()[:5] == [str(dead["id"]), dead["created_at"], "dead", "fired", "hook"]
    assert "attempts 5" in line
    assert run("notify", "list", "--status", "sent") == 0
    assert capsys.readouterr().out == "no deliveries match\n"
    assert run("notify", "show", str(dead["id"])) == 0
    shown = capsys.readouterr().out
    assert f"notification {dead['id']}: dead (fired, alert {dead['alert_id']})" in shown
    assert shown.count(": failed: ") == 5
    assert run("notify", "show", "999999") == 2
    assert "no notification with id 999999" in capsys.readouterr().err
    assert run("notify", "retry", str(dead["id"])) == 0
    assert "is due again now" in capsys.readouterr().out
    http.start()
    assert run("notify", "run-once") == 0  # the wall clock, as `klaxon worker` runs it
    assert "1 rows sent" in capsys.readouterr().out
    assert [r.json["title"] for r in http.received] == ["FIRING [HIGH] Queue stuck"]
    assert run("notify", "retry", str(dead["id"])) == 2
    assert "cannot be retried: it is sent" in capsys.readouterr().err
    assert run("notify", "list", "--limit", "0") == 2
    assert "limit: give 1 to 1000" in capsys.readouterr().err
