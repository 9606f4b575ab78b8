"""Every metric of DESIGN.md §7, checked to its exact value on a small hand-computed dataset,
on SQLite and on PostgreSQL.

The dataset (T0 = Monday 2026-03-02 00:00 UTC; "d1 23:30" is T0 + 1 day 23:30):

id | created  | severity | team     | svc | source     | rule | ack   | resolved after  | dt  | occ
----|----------|----------|----------|-----|------------|------|-------|-----------------|-----|-----
1  | d0 10:00 | critical | platform | api | prometheus | r1   | 60 s  | 600 s alice, fix| 30  | 3
2  | d0 11:00 | critical | platform | api | prometheus | r1   | 120 s | 4000 s auto     | 90  | 1
3  | d1 09:00 | high     | platform | db  | grafana    | r2   | -     | 300 s auto      | -20 | 5
4  | d1 23:30 | high     | payments | api | datadog    | r2   | 600 s | 7200 s bob, f.p.| 60  | 1
5  | d7 21:00 | medium   | payments | api | prometheus | r3   | 300 s | open            | 300 | 2
6  | d8 03:00 | low      | -        | web | webhook    | r3   | -     | open, muted     | 10  | 1
7  | d2 12:00 | critical | platform | api | prometheus | r1   | -     | open            | 120 | 1

"auto" is resolved by klaxon with resolution auto; "f.p." is false_positive; dt is the detection
delay in seconds (created_at − source_started_at; −20 is clock skew and counts as 0).
Alerts 1 and 2 share a fingerprint (fpA): the same (rule, key) fired twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from engine.analytics.dashboard import dashboard
from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.metrics import response_times
from engine.analytics.noise import flapping, noise
from engine.analytics.sla import DEFAULT_TARGETS, sla
from engine.analytics.teams import people, team_load
from engine.analytics.volume import volume
from engine.store.models import Event


@pytest.fixture
def dataset(store, db):
    at, a = store.at, store.alert
    s = timedelta(seconds=1)
    rows = [
        a(
            1,
            at(0, 10),
            severity="critical",
            rule="r1",
            fingerprint="fpA",
            occurrences=3,
            acknowledged_at=at(0, 10) + 60 * s,
            acknowledged_by="alice@x",
            resolved_at=at(0, 10) + 600 * s,
            resolved_by="alice@x",
            resolution="fixed",
            source_started_at=at(0, 10) - 30 * s,
        ),
        a(
            2,
            at(0, 11),
            severity="critical",
            rule="r1",
            fingerprint="fpA",
            acknowledged_at=at(0, 11) + 120 * s,
            acknowledged_by="alice",
            resolved_at=at(0, 11) + 4000 * s,
            resolved_by="klaxon",
            resolution="auto",
            source_started_at=at(0, 11) - 90 * s,
        ),
        a(
            3,
            at(1, 9),
            service="db",
            source="grafana",
            rule="r2",
            occurrences=5,
            resolved_at=at(1, 9) + 300 * s,
            resolved_by="klaxon",
            resolution="auto",
            source_started_at=at(1, 9) + 20 * s,
        ),
        a(
            4,
            at(1, 23, 30),
            team="payments",
            source="datadog",
            rule="r2",
            acknowledged_at=at(1, 23, 30) + 600 * s,
            acknowledged_by="bob@x",
            resolved_at=at(1, 23, 30) + 7200 * s,
            resolved_by="bob@x",
            resolution="false_positive",
            source_started_at=at(1, 23, 30) - 60 * s,
        ),
        a(
            5,
            at(7, 21),
            severity="medium",
            team="payments",
            rule="r3",
            occurrences=2,
            status="acknowledged",
            acknowledged_at=at(7, 21) + 300 * s,
            acknowledged_by="bob",
            source_started_at=at(7, 21) - 300 * s,
        ),
        a(
            6,
            at(8, 3),
            severity="low",
            team=None,
            service="web",
            source="webhook",
            rule="r3",
            status="suppressed",
            muted_by=["maintenance"],
            source_started_at=at(8, 3) - 10 * s,
        ),
        a(7, at(2, 12), severity="critical", rule="r1", source_started_at=at(2, 12) - 120 * s),
    ]
    store.alerts(rows)
    store.team("platform", [("alice@x", "UTC"), ("carol@x", "Europe/Berlin")])
    store.team("payments", [("bob@x", "America/New_York")], tz="America/New_York")
    events = [(at(0, 9, i), "prometheus") for i in range(3)] + [(at(1, 8), "grafana")]
    with db.connect() as conn:
        conn.execute(
            insert(Event),
            [
                {
                    "event_id": f"e{i}",
                    "ts": ts,
                    "received_at": ts,
                    "kind": "alert",
                    "source": src,
                    "fingerprint": "x",
                    "severity": "high",
                    "status": "firing",
                    "labels": {"env": "prod"},
                }
                for i, (ts, src) in enumerate(events)
            ],
        )
    return rows


@pytest.fixture
def notified(store, dataset):
    """Deliveries: slack and email, sent, failed and dead; n6 reaches carol at 18:30 Berlin time."""
    at = store.at
    s = timedelta(seconds=1)
    store.notifications(
        [
            {
                "alert_id": 1,
                "transition": "fired",
                "target": "alice@x",
                "channel": "slack",
                "status": "sent",
                "attempts": 1,
                "created_at": at(0, 10),
                "sent_at": at(0, 10) + 2 * s,
            },
            {
                "alert_id": 2,
                "transition": "fired",
                "target": "oncall",
                "channel": "email",
                "status": "sent",
                "attempts": 1,
                "created_at": at(0, 11),
                "sent_at": at(0, 11) + 10 * s,
            },
            {
                "alert_id": 7,
                "transition": "fired",
                "target": "slack",
                "channel": "slack",
                "status": "failed",
                "attempts": 3,
                "created_at": at(2, 12),
            },
            {
                "alert_id": 7,
                "transition": "fired",
                "target": "oncall",
                "channel": "email",
                "status": "dead",
                "attempts": 5,
                "created_at": at(2, 12),
            },
            {
                "alert_id": 1,
                "transition": "resolved",
                "target": "alice@x",
                "channel": "slack",
                "status": "sent",
                "attempts": 1,
                "created_at": at(0, 10, 10),
                "sent_at": at(0, 10, 10) + 4 * s,
            },
            {
                "alert_id": 3,
                "transition": "fired",
                "target": "oncall:primary",
                "payload": {"user": "carol@x"},
                "channel": "slack",
                "status": "sent",
                "attempts": 2,
                "created_at": at(1, 17, 30),
                "sent_at": at(1, 17, 30) + 6 * s,
            },
        ]
    )


@pytest.fixture
def period(store):
    return Filters.of(start=store.T0, end=store.at(14))


def test_mtta_mttr_mttd_mean_median_p90(wh, dataset, period) -> None:
    mtta = response_times(wh, period, "mtta")
    assert mtta["overall"] == {"count": 4, "mean": 270.0, "median": 210.0, "p90": 510.0}
    mttr = response_times(wh, period, "mttr")
    assert mttr["overall"] == {"count": 4, "mean": 3025.0, "median": 2300.0, "p90": 6240.0}
    mttd = response_times(wh, period, "mttd")
    assert mttd["overall"] == {"count": 7, "mean": 87.143, "median": 60.0, "p90": 192.0}
    assert mttd["unit"] == "seconds"


def test_response_times_by_day_and_week_of_creation(wh, dataset, period, store) -> None:
    days = response_times(wh, period, "mtta")["series"]
    assert days == [
        {"bucket": "2026-03-02T00:00:00Z", "count": 2, "mean": 90.0, "median": 90.0, "p90": 114.0},
        {
            "bucket": "2026-03-03T00:00:00Z",
            "count": 1,
            "mean": 600.0,
            "median": 600.0,
            "p90": 600.0,
        },
        {
            "bucket": "2026-03-09T00:00:00Z",
            "count": 1,
            "mean": 300.0,
            "median": 300.0,
            "p90": 300.0,
        },
    ]
    weeks = response_times(wh, Filters.of(start=store.T0, end=store.at(14), bucket="week"), "mtta")[
        "series"
    ]
    assert weeks == [
        {
            "bucket": "2026-03-02T00:00:00Z",
            "count": 3,
            "mean": 260.0,
            "median": 120.0,
            "p90": 504.0,
        },
        {
            "bucket": "2026-03-09T00:00:00Z",
            "count": 1,
            "mean": 300.0,
            "median": 300.0,
            "p90": 300.0,
        },
    ]


def test_response_times_filtered_and_grouped(wh, dataset, store) -> None:
    platform = Filters.of(start=store.T0, end=store.at(14), team=["platform"])
    assert response_times(wh, platform, "mtta")["overall"] == {
        "count": 2,
        "mean": 90.0,
        "median": 90.0,
        "p90": 114.0,
    }
    urgent = Filters.of(start=store.T0, end=store.at(14), severity="critical,high")
    assert response_times(wh, urgent, "mtta")["overall"]["mean"] == 260.0
    first_day = Filters.of(start=store.T0, end=store.at(1))
    assert response_times(wh, first_day, "mttr")["overall"] == {
        "count": 2,
        "mean": 2300.0,
        "median": 2300.0,
        "p90": 3660.0,
    }
    by_team = response_times(wh, Filters.of(start=store.T0, end=store.at(14)), "mtta", by="team")
    assert by_team["groups"] == [
        {"team": "payments", "count": 2, "mean": 450.0, "median": 450.0, "p90": 570.0},
        {"team": "platform", "count": 2, "mean": 90.0, "median": 90.0, "p90": 114.0},
    ]
    nothing = Filters.of(start=store.T0, end=store.at(14), rule=["nope"])
    assert response_times(wh, nothing, "mttr")["overall"] == {
        "count": 0,
        "mean": None,
        "median": None,
        "p90": None,
    }


def test_volume_by_source_per_day_and_events(wh, dataset, period) -> None:
    v = volume(wh, period, by="source")
    assert (v["alerts"], v["occurrences"], v["occurrences_per_alert"]) == (7, 14, 2.0)
    assert v["series"] == [
        {"bucket": "2026-03-02T00:00:00Z", "source": "prometheus", "alerts": 2, "occurrences": 4},
        {"bucket": "2026-03-03T00:00:00Z", "source": "datadog", "alerts": 1, "occurrences": 1},
        {"bucket": "2026-03-03T00:00:00Z", "source": "grafana", "alerts": 1, "occurrences": 5},
        {"bucket": "2026-03-04T00:00:00Z", "source": "prometheus", "alerts": 1, "occurrences": 1},
        {"bucket": "2026-03-09T00:00:00Z", "source": "prometheus", "alerts": 1, "occurrences": 2},
        {"bucket": "2026-03-10T00:00:00Z", "source": "webhook", "alerts": 1, "occurrences": 1},
    ]
    assert v["totals"] == [
        {"source": "prometheus", "alerts": 4, "occurrences": 7},
        {"source": "datadog", "alerts": 1, "occurrences": 1},
        {"source": "grafana", "alerts": 1, "occurrences": 5},
        {"source": "webhook", "alerts": 1, "occurrences": 1},
    ]
    assert v["events"] == 4
    assert v["events_series"] == [
        {"bucket": "2026-03-02T00:00:00Z", "source": "prometheus", "events": 3},
        {"bucket": "2026-03-03T00:00:00Z", "source": "grafana", "events": 1},
    ]
    by_team = volume(wh, period, by="team")["totals"]
    assert by_team == [
        {"team": "platform", "alerts": 4, "occurrences": 10},
        {"team": "payments", "alerts": 2, "occurrences": 3},
        {"team": "", "alerts": 1, "occurrences": 1},
    ]


def test_noise_auto_resolved_false_positives_and_noisy_rules(wh, dataset, period) -> None:
    n = noise(wh, period)
    assert (n["alerts"], n["occurrences"]) == (7, 14)
    assert (n["auto_resolved"], n["auto_resolved_share"]) == (1, 0.1429)
    assert (n["false_positives"], n["false_positive_share"]) == (1, 0.1429)
    assert [
        (r["rule"], r["alerts"], r["occurrences"], r["auto_resolved"], r["false_positives"])
        for r in n["rules"]
    ] == [
        ("r1", 3, 5, 0, 0),
        ("r2", 2, 6, 1, 1),
        ("r3", 2, 3, 0, 0),
    ]
    assert n["rules"][1]["auto_resolved_share"] == 0.5
    top = n["fingerprints"][0]
    assert (top["fingerprint"], top["alerts"], top["occurrences"], top["title"]) == (
        "fpA",
        2,
        4,
        "alert 2",
    )


def test_flapping_counts_fires_within_the_window(wh, store) -> None:
    at, a = store.at, store.alert
    k1 = [0, 10, 20, 90, 100]
    k2 = [0, 70, 140]
    rows = [
        a(i + 1, at(0, 0, m), rule="flap", fingerprint="k1", resolved_at=at(0, 0, m, 30))
        for i, m in enumerate(k1)
    ]
    rows += [
        a(i + 10, at(0, 0, m), rule="flap", fingerprint="k2", resolved_at=at(0, 0, m, 30))
        for i, m in enumerate(k2)
    ]
    store.alerts(rows)
    period = Filters.of(start=store.T0, end=store.at(1))
    got = flapping(wh, period, min_fires=3, window_s=3600)["series"]
    assert got == [
        {
            "rule": "flap",
            "key": '{"fingerprint":"k1"}',
            "title": "alert 5",
            "fires": 5,
            "max_in_window": 3,
            "first_fire": "2026-03-02T00:00:00Z",
            "last_fire": "2026-03-02T01:40:00Z",
        },
    ]
    assert (
        flapping(wh, period, min_fires=2, window_s=70 * 60)["series"][1]["max_in_window"] == 2
    )  # k2, inclusive
    assert flapping(wh, period, min_fires=4, window_s=3600)["series"] == []


def test_sla_breaches_per_severity_against_default_targets(wh, dataset, period, store) -> None:
    got = sla(wh, period, DEFAULT_TARGETS, now=store.at(9, 12))
    assert [
        (r["severity"], r["alerts"], r["ack_breaches"], r["resolve_breaches"])
        for r in got["severities"]
    ] == [
        ("critical", 3, 1, 2),
        ("high", 2, 0, 0),
        ("medium", 1, 0, 1),
    ]
    critical = got["severities"][0]
    assert (critical["ack_target_s"], critical["resolve_target_s"]) == (300, 3600)
    assert got["total"] == {
        "alerts": 6,
        "ack_breaches": 1,
        "resolve_breaches": 3,
        "ack_breach_rate": 0.1667,
        "resolve_breach_rate": 0.5,
    }
    tight = {**DEFAULT_TARGETS, "high": {"ack_s": 500, "resolve_s": 400}}
    high = sla(wh, period, tight, now=store.at(9, 12))["severities"][1]
    assert (high["ack_breaches"], high["resolve_breaches"]) == (
        1,
        1,
    )  # alert 4: ack 600 s, resolve 7200 s
    by_team = sla(wh, period, DEFAULT_TARGETS, by="team", now=store.at(9, 12))["groups"]
    assert [(r["severity"], r["team"], r["alerts"]) for r in by_team] == [
        ("critical", "platform", 3),
        ("high", "payments", 1),
        ("high", "platform", 1),
        ("medium", "payments", 1),
    ]


def test_team_load_from_alerts_when_there_are_no_notifications(wh, dataset, period, db) -> None:
    with db.read() as conn:
        teams, members = people(conn)
    got = team_load(wh, period, teams, members)
    assert [
        (
            t["team"],
            t["members"],
            t["alerts"],
            t["alerts_per_member"],
            t["after_hours_pages"],
            t["after_hours_basis"],
        )
        for t in got["teams"]
    ] == [
        ("platform", 2, 4, 2.0, 0, "alerts"),
        ("payments", 1, 2, 2.0, 1, "alerts"),  # 18:30 in New York; the other is 17:00 there
        (None, 0, 1, None, 0, "alerts"),  # the muted alert pages nobody
    ]
    assert [(p["email"], p["acknowledged"], p["resolved"]) for p in got["people"]] == [
        ("alice@x", 2, 1),
        ("bob@x", 2, 1),
        ("carol@x", 0, 0),
    ]


def test_team_load_counts_pages_in_each_time_zone(wh, notified, period, db) -> None:
    with db.read() as conn:
        teams, members = people(conn)
    got = team_load(wh, period, teams, members)
    platform = got["teams"][0]
    assert (
        platform["team"],
        platform["pages"],
        platform["after_hours_pages"],
        platform["after_hours_basis"],
    ) == ("platform", 3, 0, "notifications")
    assert [(p["email"], p["pages"], p["after_hours_pages"]) for p in got["people"]] == [
        ("alice@x", 1, 0),
        ("bob@x", 0, 0),
        ("carol@x", 1, 1),
    ]


def test_delivery_by_channel_status_and_latency(wh, notified, period, store) -> None:
    got = delivery(wh, period)
    assert got["total"]["notifications"] == 6
    assert got["total"]["by_status"] == {
        "pending": 0,
        "held": 0,
        "sent": 4,
        "failed": 1,
        "dead": 1,
        "suppressed": 0,
    }
    assert got["total"]["failure_rate"] == 0.3333
    assert got["total"]["latency_s"] == {"count": 4, "mean": 5.5, "median": 5.0, "p90": 8.8}
    slack, email = got["channels"]
    assert (slack["channel"], slack["notifications"], slack["failure_rate"], slack["attempts"]) == (
        "slack",
        4,
        0.25,
        7,
    )
    assert slack["latency_s"] == {"count": 3, "mean": 4.0, "median": 4.0, "p90": 5.6}
    assert (
        email["channel"],
        email["notifications"],
        email["failure_rate"],
        email["latency_s"]["mean"],
    ) == ("email", 2, 0.5, 10.0)
    critical = delivery(wh, Filters.of(start=store.T0, end=store.at(14), severity="critical"))
    assert critical["total"]["notifications"] == 5
    assert (
        delivery(wh, Filters.of(start=store.T0, end=store.at(14), team="payments"))["total"][
            "notifications"
        ]
        == 0
    )


def test_dashboard_kpis(wh, notified, period, store) -> None:
    d = dashboard(wh, period, DEFAULT_TARGETS, now=store.at(9, 12))
    k = d["kpis"]
    assert (
        k["alerts"],
        k["open"],
        k["occurrences"],
        k["muted"],
        k["auto_resolved"],
        k["false_positives"],
    ) == (7, 3, 14, 1, 1, 1)
    assert k["mtta"] == {"count": 4, "mean": 270.0, "median": 210.0, "p90": 510.0}
    assert (k["mttr"]["median"], k["mttd"]["p90"]) == (2300.0, 192.0)
    assert (k["ack_breach_rate"], k["resolve_breach_rate"]) == (0.1667, 0.5)
    assert (k["notifications"], k["delivery_failure_rate"]) == (6, 0.3333)
    assert [(r["rule"], r["alerts"]) for r in d["top_rules"]] == [("r1", 3), ("r2", 2), ("r3", 2)]
    assert d["series"][0] == {
        "bucket": "2026-03-02T00:00:00Z",
        "alerts": 2,
        "critical": 2,
        "high": 0,
        "medium": 0,
        "low": 0,
    }


def test_every_metric_takes_the_same_filters(wh, notified, store, db) -> None:
    """source in (grafana, datadog) keeps alerts 3 and 4 (rule r2) and what hangs off them."""
    f = Filters.of(start=store.T0, end=store.at(14), source="grafana,datadog")
    assert response_times(wh, f, "mtta")["overall"] == {
        "count": 1,
        "mean": 600.0,
        "median": 600.0,
        "p90": 600.0,
    }
    assert response_times(wh, f, "mttr")["overall"] == {
        "count": 2,
        "mean": 3750.0,
        "median": 3750.0,
        "p90": 6510.0,
    }
    assert response_times(wh, f, "mttd")["overall"] == {
        "count": 2,
        "mean": 30.0,
        "median": 30.0,
        "p90": 54.0,
    }
    v = volume(wh, f, by="severity")
    assert (v["totals"], v["events"]) == ([{"severity": "high", "alerts": 2, "occurrences": 6}], 1)
    by_service = volume(wh, Filters.of(start=store.T0, end=store.at(14), rule="r2"), by="service")
    assert by_service["totals"] == [
        {"service": "api", "alerts": 1, "occurrences": 1},
        {"service": "db", "alerts": 1, "occurrences": 5},
    ]
    by_rule = volume(wh, Filters.of(start=store.T0, end=store.at(14), service="api"), by="rule")
    assert by_rule["totals"] == [
        {"rule": "r1", "alerts": 3, "occurrences": 5},
        {"rule": "r2", "alerts": 1, "occurrences": 1},
        {"rule": "r3", "alerts": 1, "occurrences": 2},
    ]
    n = noise(wh, f)
    assert (n["alerts"], n["auto_resolved"], n["false_positives"]) == (2, 1, 1)
    assert [r["rule"] for r in n["rules"]] == ["r2"]
    assert flapping(wh, f, min_fires=2, window_s=86400)["series"] == []
    s = sla(wh, f, DEFAULT_TARGETS, now=store.at(9, 12))
    assert [
        (r["severity"], r["alerts"], r["ack_breaches"], r["resolve_breaches"])
        for r in s["severities"]
    ] == [("high", 2, 0, 0)]
    d = delivery(wh, f)
    assert (d["total"]["notifications"], d["total"]["by_status"]["sent"]) == (1, 1)
    assert d["total"]["latency_s"]["mean"] == 6.0
    with db.read() as conn:
        teams, members = people(conn)
    load = team_load(wh, f, teams, members)
    assert [
        (t["team"], t["alerts"], t["pages"], t["after_hours_pages"]) for t in load["teams"]
    ] == [
        ("payments", 1, 0, 1),  # no pages: its alert's creation, 18:30 in New York
        ("platform", 1, 1, 0),  # the page at 17:30 UTC, the team's zone
    ]
    carol = next(p for p in load["people"] if p["email"] == "carol@x")
    assert (carol["pages"], carol["after_hours_pages"]) == (1, 1)  # 18:30 in Berlin
    k = dashboard(wh, f, DEFAULT_TARGETS, now=store.at(9, 12))["kpis"]
    assert (k["alerts"], k["mtta"]["count"], k["notifications"], k["false_positives"]) == (
        2,
        1,
        1,
        1,
    )
