"""Routes, silences, inhibitions and correlations at their edges (DSL.md §5).

Each scenario runs whole and one event per batch; both must print the same transitions.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.engine.pipeline.scenario import T0, ev, key, transitions


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def muted(rules: str, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(at, key, transition, muted_by) of every fire and resolve."""
    return [
        (r["at"], r["key"], r["transition"], r["muted_by"])
        for r in transitions(rules, events, 4e7).iter_rows(named=True)
    ]


# ---------------------------------------------------------------- routes

ROUTES = """
rule r when title == "x" by host severity low team base notify a, b escalate after 5m to lead end

route r1 when host == "h1" team t1 severity high labels env = "one", keep = "{{ host }}"
  notify b, c escalate after 1m to pager continue end
route r2 when host == "h1" and severity == "low" team t2 labels env = "two" notify a, d end
route r3 when true team other notify z end
route r4 when true team never notify never end
"""


def test_routes_first_match_continue_and_accumulated_channels() -> None:
    out = transitions(ROUTES, [ev(0), ev(1, host="h2")], 600)
    rows = {r["key"]: r for r in out.iter_rows(named=True)}
    h1, h2 = rows[key(host="h1")], rows[key(host="h2")]
    # h1: r1 (continue), then r2 matches (it sees the alert as the rule made it: severity
    # low) and stops; r3 and r4 are never tried.
    assert h1["notify"] == ["a", "b", "c", "d"]
    assert h1["team"] == "t2"
    assert h1["severity"] == "high"  # set by r1, not overridden by r2
    assert dict(h1["labels"]) == {"env": "two", "keep": "h1"}
    assert [(e["after_ms"], e["target"]) for e in h1["escalate"]] == [
        (300000, "lead"),
        (60000, "pager"),
    ]
    # h2: only r3.
    assert (h2["notify"], h2["team"], h2["severity"]) == (["a", "b", "z"], "other", "low")


def test_a_resolve_keeps_the_routing_its_alert_fired_with() -> None:
    rules = """
rule r when title == "x" by host severity low end
route big when value > 10 team big notify pager end
"""
    out = transitions(rules, [ev(0, value=50), ev(5, value=1), ev(9, status="resolved")], 600)
    assert [(r["transition"], r["team"], r["notify"]) for r in out.iter_rows(named=True)] == [
        ("fired", "big", ["pager"]),
        ("resolved", "big", ["pager"]),
    ]


# ---------------------------------------------------------------- silences

ONE_SHOT = """
rule r when title == "x" by n end
silence s when host == "h1" from 2026-01-01T00:01:40Z until 2026-01-01T00:03:20Z end
"""


def test_a_silence_is_active_from_its_start_up_to_but_not_at_its_end() -> None:
    events = [ev(s, labels={"n": str(s)}) for s in (99, 100, 199, 200)]
    events.insert(2, ev(150, host="h2", labels={"n": "other"}))  # another host: not muted
    got = {(r[0] - T0).total_seconds(): r[3] for r in muted(ONE_SHOT, events)}
    assert got == {99: [], 100: ["s"], 150: [], 199: ["s"], 200: []}


def test_a_resolve_is_muted_by_what_is_active_at_its_own_instant() -> None:
    events = [ev(50, labels={"n": "1"}), ev(150, status="resolved", labels={"n": "1"})]
    assert [(r[2], r[3]) for r in muted(ONE_SHOT, events)] == [("fired", []), ("resolved", ["s"])]


NIGHTLY = """
rule r when title == "x" by n end
silence nightly when true during sun 01:00-03:30 in "Europe/Berlin" end
"""


def _muted_at(rules: str, instants: list[str]) -> dict[str, bool]:
    events = [{"ts": t, "title": "x", "labels": {"n": t}} for t in sorted(instants)]
    return {json.loads(r[1])["n"]: bool(r[3]) for r in muted(rules, events)}


def test_during_follows_the_spring_daylight_saving_change() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. 01:00 local is 00:00Z, 03:30 local is 01:30Z.
    instants = {
        "2026-03-28T23:59:59Z": False,
        "2026-03-29T00:00:00Z": True,
        "2026-03-29T00:59:59Z": True,  # 01:59:59 CET, the last second before the jump
        "2026-03-29T01:00:00Z": True,  # 03:00 CEST
        "2026-03-29T01:29:59Z": True,
        "2026-03-29T01:30:00Z": False,  # 03:30 CEST: the end is excluded
        "2026-04-05T01:15:00Z": True,  # the next Sunday, 03:15 CEST
        "2026-03-30T00:30:00Z": False,  # Monday
    }
    assert _muted_at(NIGHTLY, list(instants)) == instants


def test_during_follows_the_autumn_daylight_saving_change() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. 01:00 CEST is 23:00Z on Saturday, 03:30 CET
    # is 02:30Z: the window lasts three and a half hours of real time.
    instants = {
        "2026-10-24T22:59:59Z": False,
        "2026-10-24T23:00:00Z": True,
        "2026-10-25T00:30:00Z": True,  # 02:30 CEST
        "2026-10-25T01:30:00Z": True,  # 02:30 CET, the same wall clock an hour later
        "2026-10-25T02:29:59Z": True,
        "2026-10-25T02:30:00Z": False,
        "2026-11-01T00:15:00Z": True,  # the next Sunday, 01:15 CET
        "2026-11-01T00:00:00Z": True,  # 01:00 CET
        "2026-10-31T23:59:00Z": False,  # 00:59 CET
    }
    assert _muted_at(NIGHTLY, list(instants)) == instants


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    rules = """
rule r when title == "x" by n end
silence night when true during sat 22:00-02:00 end
"""
    # 2026-01-03 is a Saturday.
    instants = {
        "2026-01-03T01:00:00Z": False,  # Saturday morning: Friday's window, and Friday is not in it
        "2026-01-03T21:59:59Z": False,
        "2026-01-03T22:00:00Z": True,
        "2026-01-04T01:59:59Z": True,  # Sunday morning: still Saturday's window
        "2026-01-04T02:00:00Z": False,
        "2026-01-04T23:00:00Z": False,  # Sunday night
    }
    assert _muted_at(rules, list(instants)) == instants


# ---------------------------------------------------------------- inhibits

INHIBIT = """
rule crit when title == "down" by service end
rule warn when title == "slow" by service, host end
inhibit i when rule == "warn" while rule == "crit" on service end
"""


def test_an_inhibit_needs_its_source_firing_at_that_instant() -> None:
    events = [
        ev(10, title="slow", service="a", host="h0"),  # before crit fires: not muted
        ev(20, title="down", service="a"),
        ev(20, title="slow", service="a", host="h1"),  # crit fired at this instant: muted
        ev(30, title="slow", service="b", host="h1"),  # other service
        ev(40, title="down", service="a", status="resolved"),
        ev(40, title="slow", service="a", host="h2"),  # crit resolved at this instant: not muted
    ]
    got = [(json.loads(r[1]).get("host"), r[2], r[3]) for r in muted(INHIBIT, events)]
    assert got == [
        ("h0", "fired", []),
        (None, "fired", []),
        ("h1", "fired", ["i"]),
        ("h1", "fired", []),
        (None, "resolved", []),
        ("h2", "fired", []),
    ]


def test_an_alert_never_inhibits_itself_but_others_of_its_rule_do() -> None:
    rules = """
rule crit when title == "down" by service, host end
inhibit i when true while rule == "crit" on service end
"""
    events = [
        ev(0, title="down", service="a", host="h1"),
        ev(10, title="down", service="a", host="h2"),
    ]
    assert [r[3] for r in muted(rules, events)] == [[], ["i"]]


def test_inhibit_on_compares_missing_fields_as_empty() -> None:
    rules = """
rule crit when title == "down" by service end
rule warn when title == "slow" by host end
inhibit i when rule == "warn" while rule == "crit" on labels.zone end
"""
    events = [
        ev(0, title="down", service="a"),  # no zone
        ev(10, title="slow", host="h1"),  # no zone either: "" == "", muted
        ev(20, title="slow", host="h2", labels={"zone": "z1"}),  # not muted
    ]
    got = [(json.loads(r[1]), r[3]) for r in muted(rules, events)]
    assert got == [({"service": "a"}, []), ({"host": "h1"}, ["i"]), ({"host": "h2"}, [])]


# ---------------------------------------------------------------- correlate

CORRELATE = """
rule r when title == "x" by host end
correlate c when true by service within 5m end
"""


def test_correlate_joins_within_inclusive_and_opens_a_new_incident_after() -> None:
    events = [
        ev(0, service="a", host="h1"),
        ev(100, service="b", host="h2"),
        ev(300, service="a", host="h3"),  # exactly 5m after the incident opened: joins
        ev(301, service="a", host="h4"),  # one second more: a new incident
        ev(400, service="a", host="h1", status="resolved"),
        ev(500, service="a", host="h5"),  # within 5m of the second incident
    ]
    out = transitions(CORRELATE, events, 600)
    got = [
        (
            json.loads(r["key"])["host"],
            r["transition"],
            json.loads(r["incident_key"]),
            (r["incident_opened"] - T0).total_seconds(),
        )
        for r in out.iter_rows(named=True)
    ]
    assert set(out["incident_by"]) == {"c"}
    assert got == [
        ("h1", "fired", {"service": "a"}, 0),
        ("h2", "fired", {"service": "b"}, 100),
        ("h3", "fired", {"service": "a"}, 0),
        ("h4", "fired", {"service": "a"}, 301),
        ("h1", "resolved", {"service": "a"}, 0),  # a resolve carries its alert's incident
        ("h5", "fired", {"service": "a"}, 301),
    ]


def test_alerts_not_matching_a_correlate_have_no_incident() -> None:
    rules = CORRELATE.replace("when true", 'when service == "a"')
    out = transitions(rules, [ev(0, service="a"), ev(1, service="b", host="h2")], 600)
    assert out["incident_by"].to_list() == ["c", None]


def test_silences_see_an_alert_as_the_event_that_fired_it() -> None:
    rules = """
rule r when title == "x" by host end
silence big when value > 10 end
"""
    events = [
        ev(0, value=5),
        ev(10, value=50),
        ev(20, status="resolved", value=50),
        ev(30, value=50),
    ]
    assert [(r[2], r[3]) for r in muted(rules, events)] == [
        ("fired", []),
        ("resolved", []),  # the repeat at 10 had value 50; the alert fired with 5
        ("fired", ["big"]),
    ]
