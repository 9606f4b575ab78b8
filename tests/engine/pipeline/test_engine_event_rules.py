"""Event rules at their edges (DSL.md §4.3, §4): `for` deadlines, `resolve after`, `new within`,
the value and severity of the latest event, and rendered titles and labels.

Each scenario runs whole and one event per batch; both must print the same transitions.
"""

from __future__ import annotations

import polars as pl

from tests.engine.pipeline.scenario import H1, T0, at, ev, feed, key, run, transitions

FOR_1M = 'rule r when title == "x" by host for 1m end'


def test_for_fires_at_exactly_t0_plus_d() -> None:
    assert run(FOR_1M, [ev(0, value=1)], until=59) == []
    assert run(FOR_1M, [ev(0, value=1)], until=60) == [(60, H1, "fired", 1)]


def test_a_resolve_at_exactly_the_deadline_cancels_the_pending_alert() -> None:
    # Events at an instant apply before its timers (DSL.md §4.1): nothing is printed.
    assert run(FOR_1M, [ev(0), ev(60, status="resolved")], until=600) == []


def test_a_resolve_before_the_deadline_cancels_and_the_next_event_starts_a_new_t0() -> None:
    events = [ev(0), ev(30, status="resolved"), ev(40, value=2)]
    assert run(FOR_1M, events, until=600) == [(100, H1, "fired", 2)]


def test_a_firing_event_at_the_deadline_still_fires_at_the_deadline() -> None:
    out = transitions(FOR_1M, [ev(0, value=1), ev(60, value=5)], until=600)
    row = out.row(0, named=True)
    assert out.height == 1
    assert (row["at"], row["transition"], row["first_seen"]) == (at(60), "fired", at(0))
    assert row["value"] == 5  # the latest matching firing event, which came at the deadline
    assert row["occurrences"] == 2


def test_a_resolve_after_firing_resolves_with_the_latest_value() -> None:
    events = [ev(0, value=1), ev(70, value=3), ev(80, status="resolved", value=99)]
    assert run(FOR_1M, events, until=600) == [(60, H1, "fired", 1), (80, H1, "resolved", 3)]


RESOLVE_AFTER = 'rule r when title == "x" by host resolve after 1m end'


def test_resolve_after_resolves_when_quiet_for_d() -> None:
    assert run(RESOLVE_AFTER, [ev(0, value=1)], until=600) == [
        (0, H1, "fired", 1),
        (60, H1, "resolved", 1),
    ]


def test_an_event_exactly_at_the_resolve_after_deadline_keeps_the_alert_open() -> None:
    assert run(RESOLVE_AFTER, [ev(0, value=1), ev(60, value=2)], until=600) == [
        (0, H1, "fired", 1),
        (120, H1, "resolved", 2),
    ]


def test_resolve_after_and_a_new_event_later_fire_again() -> None:
    assert run(RESOLVE_AFTER, [ev(0), ev(61)], until=600) == [
        (0, H1, "fired", None),
        (60, H1, "resolved", None),
        (61, H1, "fired", None),
        (121, H1, "resolved", None),
    ]


def test_resolve_then_fire_at_one_instant_prints_both_in_arrival_order() -> None:
    rules = 'rule r when title == "x" by host end'
    events = [ev(0), ev(10, status="resolved"), ev(10, value=4)]
    assert run(rules, events, until=600) == [
        (0, H1, "fired", None),
        (10, H1, "resolved", None),
        (10, H1, "fired", 4),
    ]


def test_repeats_are_one_row_per_alert_and_instant() -> None:
    rules = 'rule r when title == "x" by host end'
    out = feed(rules, [ev(0), ev(5), ev(5), ev(5), ev(9)], 600, None)
    rows = [
        ((r["at"] - T0).total_seconds(), r["transition"], r["occurrences"])
        for r in out.iter_rows(named=True)
    ]
    assert rows == [(0, "fired", 1), (5, "repeated", 3), (9, "repeated", 1)]


def test_severity_comes_from_the_latest_event_unless_the_rule_sets_it() -> None:
    events = [
        ev(0, severity="low"),
        ev(5, severity="critical"),
        ev(9, status="resolved", severity="info"),
    ]
    out = transitions('rule r when title == "x" by host end', events, 600)
    assert out["severity"].cast(pl.String).to_list() == ["low", "critical"]
    out = transitions('rule r when title == "x" by host severity high end', events, 600)
    assert out["severity"].cast(pl.String).to_list() == ["high", "high"]


def test_without_by_the_key_is_the_fingerprint() -> None:
    out = transitions('rule r when title == "x" end', [ev(0, fingerprint="abc")], 600)
    assert out["key"].to_list() == [key(fingerprint="abc")]


# ---------------------------------------------------------------- new within

NEW = 'rule n when title == "x" new within 10m by service end'


def test_new_within_fires_on_first_appearance_and_ignores_resolved_events() -> None:
    events = [
        ev(0, service="a", value=1),
        ev(60, service="a", value=2),
        ev(120, service="a", status="resolved"),
        ev(130, service="b", status="resolved"),  # a resolved event is not an appearance
    ]
    assert run(NEW, events, until=7200) == [(0, key(service="a"), "fired", 1)]


def test_new_within_fires_again_after_d_of_silence() -> None:
    rules = NEW.replace("by service", "by service resolve after 1m")
    events = [
        ev(0, service="a"),
        ev(300, service="a"),  # seen 300 s ago: not new, and it is remembered
        ev(899, service="a"),  # 599 s after the last one: not new
        ev(1499, service="a"),  # exactly D after the last one: new again
    ]
    assert run(rules, events, until=7200) == [
        (0, key(service="a"), "fired", None),
        (60, key(service="a"), "resolved", None),
        (1499, key(service="a"), "fired", None),
        (1559, key(service="a"), "resolved", None),
    ]


# ---------------------------------------------------------------- templates

TEMPLATED = """
rule r "{{ service }} at {{ value }} [{{ missing }}] {{ count }}x {{ rule }}/{{ severity }}"
  when title == "x"
  by service
  severity high
  labels owner = "team-{{ labels.owner }}", fixed = "yes", gone = "<{{ labels.nope }}>"
end
"""


def test_title_and_labels_are_rendered_with_missing_labels_empty_and_plain_numbers() -> None:
    events = [ev(0, service="api", value=3.0, labels={"owner": "core"})]
    row = transitions(TEMPLATED, events, 600).row(0, named=True)
    assert row["title"] == "api at 3 [] 1x r/high"
    assert dict(row["labels"]) == {"owner": "team-core", "fixed": "yes", "gone": "<>"}


def test_fractional_numbers_render_as_they_are() -> None:
    row = transitions(TEMPLATED, [ev(0, service="api", value=2.5)], 600).row(0, named=True)
    assert row["title"] == "api at 2.5 [] 1x r/high"


def test_a_title_without_a_template_falls_back_to_the_event_title() -> None:
    row = transitions("rule r when true by host end", [ev(0, title="Disk full")], 600).row(
        0, named=True
    )
    assert row["title"] == "Disk full"
