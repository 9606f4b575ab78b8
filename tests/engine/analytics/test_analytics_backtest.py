"""Backtests and silence previews over stored events, on SQLite and PostgreSQL.

Events (T0 = 2026-03-02 00:00 UTC): `disk` on host a at 00:00, 00:01, 00:02 and resolved at
00:10; `disk` on host b at 00:05; `cpu` on host a at 01:00, 01:00:30, 01:01, 01:01:30; `cpu` on
host c at 02:00. The current rules have one rule, `disk` (by host, notify ops); the proposed
file adds `cpu_burst` (3 within 2 minutes by host, notify oncall:primary and ops). Alice is on
call; her contact channel is ops_email.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from sqlalchemy import insert

from engine.analytics.backtest import backtest
from engine.analytics.preview import ProposedSilence, preview_silence
from engine.auth.principal import SYSTEM
from engine.notify.schedules import create_schedule
from engine.schema import EVENT_SCHEMA
from engine.store import rules as rules_store
from engine.store.events import insert_events
from engine.store.models import Channel, User

DISK = """rule disk "Disk full on {{ host }}"
  when title == "disk"
  by host
  severity high
  notify ops
end
"""
CPU = """
rule cpu_burst "CPU burst on {{ host }}"
  when title == "cpu"
  count() >= 3 within 2m
  by host
  severity critical
  notify oncall:primary, ops
end
"""


def _event(i: int, ts, title: str, host: str, status: str = "firing") -> dict:
    return {
        "event_id": f"e{i}",
        "ts": ts,
        "received_at": ts,
        "kind": "event",
        "source": "app",
        "source_id": "",
        "fingerprint": f"{title}-{host}",
        "title": title,
        "description": "",
        "severity": "medium",
        "status": status,
        "service": "api" if host != "c" else "web",
        "environment": "prod",
        "host": host,
        "value": None,
        "labels": {},
        "raw": None,
    }


@pytest.fixture
def history(db, store):
    at = store.at
    s = timedelta(seconds=1)
    rows = [
        _event(1, at(0, 0, 0), "disk", "a"),
        _event(2, at(0, 0, 1), "disk", "a"),
        _event(3, at(0, 0, 2), "disk", "a"),
        _event(4, at(0, 0, 5), "disk", "b"),
        _event(5, at(0, 0, 10), "disk", "a", "resolved"),
        _event(6, at(0, 1, 0), "cpu", "a"),
        _event(7, at(0, 1, 0) + 30 * s, "cpu", "a"),
        _event(8, at(0, 1, 1), "cpu", "a"),
        _event(9, at(0, 1, 1) + 30 * s, "cpu", "a"),
        _event(10, at(0, 2, 0), "cpu", "c"),
    ]
    with db.connect() as conn:
        insert_events(conn, pl.DataFrame(rows, schema=EVENT_SCHEMA))
        rules_store.save(conn, DISK, actor="tests")
        for name in ("ops", "ops_email"):
            conn.execute(
                insert(Channel).values(name=name, kind="chat", url_encrypted="x", url_masked="x")
            )
        conn.execute(
            insert(User).values(
                email="alice@x", name="alice", role="operator", contact_channels=["ops_email"]
            )
        )
        create_schedule(
            conn, SYSTEM, "primary", rotation={"users": ["alice@x"], "start": "2026-03-01"}
        )
    store.alerts(
        [store.alert(1, at(0, 0, 0), rule="disk"), store.alert(2, at(0, 0, 5), rule="disk")]
    )


def test_backtest_reports_alerts_pages_and_the_difference_with_the_current_rules(
    db, wh, history, store
) -> None:
    seen = []
    got = backtest(
        db, wh, DISK + CPU, store.T0, store.at(1), progress=lambda d, t: seen.append((d, t))
    )
    assert got["events"] == 10
    assert (seen[0], seen[-1]) == ((0, 10), (10, 10))
    rules = {r["rule"]: r for r in got["rules"]}
    assert rules["disk"] | {"occurrences": None} == {
        "rule": "disk",
        "alerts": 2,
        "muted": 0,
        "resolved": 1,
        "occurrences": None,
        "incidents": 0,
        "pages": 2,
        "current_alerts": 2,
        "current_pages": 2,
        "stored_alerts": 2,
        "alerts_change": 0,
        "pages_change": 0,
    }
    cpu = rules["cpu_burst"]
    assert (
        cpu["alerts"],
        cpu["resolved"],
        cpu["pages"],
        cpu["current_alerts"],
        cpu["alerts_change"],
    ) == (1, 1, 2, 0, 1)
    assert got["totals"] == {
        "alerts": 3,
        "pages": 4,
        "current_alerts": 2,
        "current_pages": 2,
        "stored_alerts": 2,
    }
    assert got["channels"] == [
        {"channel": "ops", "pages": 3, "current_pages": 2, "pages_change": 1},
        {"channel": "ops_email", "pages": 1, "current_pages": 0, "pages_change": 1},
    ]
    assert got["people"] == [
        {"person": "alice@x", "pages": 1, "current_pages": 0, "pages_change": 1}
    ]
    assert got["same_as_current"] is False


def test_backtest_of_the_current_rules_runs_once_and_matches(db, wh, history, store) -> None:
    got = backtest(db, wh, DISK, store.T0, store.at(1))
    assert got["same_as_current"] is True
    assert got["totals"]["alerts"] == got["totals"]["current_alerts"] == 2


def test_backtest_period_excludes_events_outside_it(db, wh, history, store) -> None:
    got = backtest(db, wh, DISK + CPU, store.at(0, 0, 30), store.at(0, 1, 30))
    assert got["events"] == 4  # the cpu events on host a at 01:00–01:01:30
    assert got["totals"]["alerts"] == 1


def test_a_maintenance_window_preview_counts_muted_alerts_and_saved_pages(
    db, wh, history, store
) -> None:
    window = ProposedSilence(
        matcher='host == "a"', starts_at=store.at(0, 0, 0), ends_at=store.at(0, 1, 1)
    )
    got = preview_silence(db, wh, window, store.T0, store.at(1))
    assert got["alerts"] == 1  # disk on host a; disk on b is not matched
    assert got["pages_saved"] == 1
    assert got["channels"] == [{"channel": "ops", "pages": 1}]
    assert got["by_rule"] == [{"rule": "disk", "alerts": 1}]
    assert got["sample"][0]["key"] == '{"host":"a"}'
    nothing = preview_silence(db, wh, ProposedSilence(matcher='host == "z"'), store.T0, store.at(1))
    assert (nothing["alerts"], nothing["pages_saved"]) == (0, 0)


def test_backtest_counts_alerts_fired_per_hour_for_both_rule_sets(db, wh, history, store) -> None:
    got = backtest(db, wh, DISK + CPU, store.T0, store.at(1))
    assert got["bucket"] == "1h"
    series = got["series"]
    assert [r["at"] for r in series[:3]] == [
        "2026-03-02T00:00:00Z",
        "2026-03-02T01:00:00Z",
        "2026-03-02T02:00:00Z",
    ]
    assert len(series) == 24  # every hour of the day, empty ones as 0
    nonzero = [r for r in series if r["alerts"] or r["current_alerts"]]
    assert nonzero == [
        {"at": "2026-03-02T00:00:00Z", "alerts": 2, "current_alerts": 2, "alerts_change": 0},
        {"at": "2026-03-02T01:00:00Z", "alerts": 1, "current_alerts": 0, "alerts_change": 1},
    ]
    assert sum(r["alerts"] for r in series) == got["totals"]["alerts"]
    assert sum(r["current_alerts"] for r in series) == got["totals"]["current_alerts"]
    # the current rules' run now comes from the cache: the same series
    again = backtest(db, wh, CPU + DISK, store.T0, store.at(1))
    assert [r["current_alerts"] for r in again["series"]] == [r["current_alerts"] for r in series]


def test_backtest_series_is_per_day_past_three_days(db, wh, history, store) -> None:
    got = backtest(db, wh, DISK + CPU, store.at(-3, 12), store.at(1))
    assert got["bucket"] == "1d"
    assert [(r["at"], r["alerts"], r["current_alerts"]) for r in got["series"]] == [
        ("2026-02-27T00:00:00Z", 0, 0),
        ("2026-02-28T00:00:00Z", 0, 0),
        ("2026-03-01T00:00:00Z", 0, 0),
        ("2026-03-02T00:00:00Z", 3, 2),
    ]


def test_backtest_of_the_current_rules_has_one_series_twice(db, wh, history, store) -> None:
    got = backtest(db, wh, DISK, store.T0, store.at(0, 3))
    assert [(r["alerts"], r["current_alerts"]) for r in got["series"]] == [(2, 2), (0, 0), (0, 0)]
