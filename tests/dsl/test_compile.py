"""What compiling gives the engine: rule specs, templates, windows and silences' schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from dsl import load_rules
from dsl.compiler import compile_template, event_scope
from dsl.templates import parse_template
from tests.dsl.frames import events
from tests.dsl.test_syntax import EVERY_CLAUSE

# ---------------------------------------------------------------- rules


def test_compiled_rules_carry_every_clause() -> None:
    rules = {r.rule_id: r for r in load_rules(EVERY_CLAUSE).rules}
    api = rules["api_error_rate"]
    assert api.kind == "event"
    assert api.key_fields == ("service", "environment")
    assert (api.hold_ms, api.resolve_after_ms) == (120_000, 600_000)
    assert (api.severity, api.team) == ("critical", "platform")
    assert api.notify == ("slack_platform", "oncall_email")
    assert api.escalate == ((900_000, "sre_leads"), (3_600_000, "team:infra"))
    assert [key for key, _ in api.labels] == ["runbook", "on-call"]
    assert (rules["spike"].kind, rules["quiet"].kind, rules["first_seen"].kind) == (
        "window",
        "absent",
        "new",
    )
    assert rules["quiet"].absent_ms == 600_000
    assert rules["first_seen"].new_ms == 86_400_000
    assert rules["first_seen"].key_fields == ("error_class",)


def test_a_rule_without_by_is_keyed_by_fingerprint() -> None:
    (rule,) = load_rules("rule r\n  when a == 1\nend\n").rules
    assert rule.key_fields == ("fingerprint",)
    assert (rule.severity, rule.hold_ms, rule.window) == (None, 0, None)


def test_horizon_is_the_longest_look_back() -> None:
    compiled = load_rules(
        "rule a\n  when x == 1\n  count() > 1 within 5m\nend\n"
        "rule b\n  when x == 1\n  count() > 2 * prev(count()) within 10m\nend\n"
        "rule c\n  when x == 1\n  new within 1h\nend\n"
    )
    assert [r.horizon_ms for r in compiled.rules] == [300_000, 1_200_000, 3_600_000]
    assert compiled.horizon_ms == 3_600_000


def test_labels_read_by_rules_and_by_routes_are_listed_apart() -> None:
    compiled = load_rules(
        'rule r\n  when error_rate > 1 and labels.env == "prod"\n  by labels.region\nend\n'
        'route x\n  when team_label == "a"\nend\n'
    )
    assert compiled.event_labels == {"error_rate", "env", "region"}
    assert compiled.alert_labels == {"team_label"}


def test_the_signature_changes_with_what_decides_alerts_only() -> None:
    def signature(text: str) -> str:
        return load_rules(text).rules[0].signature

    base = signature("rule r\n  when a == 1\n  by host\nend\n")
    assert signature('rule r "title"\n  when a == 1\n  by host\n  notify x\nend\n') == base
    assert signature("rule r\n  when a == 2\n  by host\nend\n") != base
    assert signature("rule r\n  when a == 1\n  by service\nend\n") != base


# ---------------------------------------------------------------- windows


def test_a_window_threshold_reads_prev_aggregates_from_columns() -> None:
    (rule,) = load_rules(
        "rule r\n  when a == 1\n  count() > 3 * prev(count()) + 1 within 5m\nend\n"
    ).rules
    window = rule.window
    assert window is not None
    assert (window.agg.name, window.op, window.duration_ms) == ("count", ">", 300_000)
    assert [p.name for p in window.prev] == ["count"]
    frame = pl.DataFrame({"agg": [7.0, 8.0, 5.0, 5.0], "__prev0": [2.0, 2.0, None, 1.0]})
    # 3 * 2 + 1 = 7: 7 is not above it, 8 is; no previous window has no threshold: false
    out = frame.select(window.condition(pl.col("agg")))
    assert out.to_series().to_list() == [False, True, False, True]


@pytest.mark.parametrize(
    ("agg", "name", "quantile", "reads_text"),
    [
        ("count()", "count", None, False),
        ("rate()", "rate", None, False),
        ("sum(latency_ms)", "sum", None, False),
        ("avg(value)", "avg", None, False),
        ("min(value)", "min", None, False),
        ("max(value)", "max", None, False),
        ("p50(latency_ms)", "p50", 0.5, False),
        ("p90(latency_ms)", "p90", 0.9, False),
        ("p95(latency_ms)", "p95", 0.95, False),
        ("p99(latency_ms)", "p99", 0.99, False),
        ("count_distinct(host)", "count_distinct", None, True),
    ],
)
def test_every_aggregate_compiles(
    agg: str, name: str, quantile: float | None, reads_text: bool
) -> None:
    (rule,) = load_rules(f"rule r\n  when a == 1\n  {agg} > 5 within 1m\nend\n").rules
    assert rule.window is not None
    spec = rule.window.agg
    assert (spec.name, spec.quantile, spec.reads_text) == (name, quantile, reads_text)
    assert (spec.field is None) == (agg.endswith("()"))


# ---------------------------------------------------------------- templates


def render(template: str, frame: pl.DataFrame) -> list[str]:
    from dsl import ast

    expr = compile_template(parse_template(ast.String(template)), event_scope())
    return frame.lazy().with_columns(expr.alias("__out")).collect()["__out"].to_list()


def test_a_template_renders_fields_and_a_missing_label_renders_empty() -> None:
    frame = events(
        {"service": "api", "value": 5.0, "labels": {"env": "prod", "k-8": "x"}},
        {"service": "web", "value": 2.5, "labels": {}},
        {},
    )
    template = '{{ service }}/{{ labels.env }}/{{ env }}/{{ labels["k-8"] }} = {{ value }}'
    assert render(template, frame) == ["api/prod/prod/x = 5", "web/// = 2.5", "/// = "]


def test_a_template_without_fields_is_constant() -> None:
    assert render("plain text", events({}, {})) == ["plain text", "plain text"]


def test_template_numbers_read_without_a_needless_fraction() -> None:
    frame = events({"value": 3.0}, {"value": -0.5}, {"value": 120.0}, {"value": 1 / 3})
    assert render("{{ value }}", frame) == ["3", "-0.5", "120", "0.333333"]


# ---------------------------------------------------------------- silences


def active(during: str, *instants: datetime) -> list[bool]:
    (silence,) = load_rules(f"silence s\n  when true\n  {during}\nend\n").silences
    frame = pl.DataFrame({"at": list(instants)}, schema={"at": pl.Datetime("us", "UTC")})
    return frame.select(silence.active(pl.col("at"))).to_series().to_list()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    # 2026-01-02 is a Friday.
    assert active(
        "during fri 22:00-06:00",
        utc(2026, 1, 2, 21, 59),  # Fri before
        utc(2026, 1, 2, 22, 0),  # Fri 22:00, in
        utc(2026, 1, 3, 5, 59),  # Sat early, still Friday's window
        utc(2026, 1, 3, 6, 0),  # end excluded
        utc(2026, 1, 3, 22, 30),  # Sat night: Saturday is not listed
        utc(2026, 1, 2, 3, 0),  # Fri early: Thursday's window, not listed
    ) == [False, True, True, False, False, False]


@pytest.mark.parametrize(
    ("days", "weekdays"),
    [
        ("daily", {0, 1, 2, 3, 4, 5, 6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("tue", {1}),
        ("mon,wed-thu", {0, 2, 3}),
    ],
)
def test_days(days: str, weekdays: set[int]) -> None:
    # Noon on 2026-01-05 (a Monday) and the six days after.
    noons = [utc(2026, 1, 5 + d, 12) for d in range(7)]
    assert active(f"during {days} 09:00-17:00", *noons) == [d in weekdays for d in range(7)]


def test_a_time_zone_follows_daylight_saving() -> None:
    # Europe/Berlin: UTC+1 in winter, UTC+2 from 2026-03-29 02:00 local.
    during = 'during daily 09:00-10:00 in "Europe/Berlin"'
    assert active(during, utc(2026, 1, 10, 8, 30), utc(2026, 1, 10, 7, 30)) == [True, False]
    assert active(during, utc(2026, 7, 10, 7, 30), utc(2026, 7, 10, 8, 30)) == [True, False]


def test_from_is_included_and_until_excluded() -> None:
    (silence,) = load_rules(
        "silence s\n  when true\n  from 2026-01-01T00:00:00Z\n  until 2026-01-02T00:00:00Z\nend\n"
    ).silences
    instants = [
        utc(2025, 12, 31, 23, 59),
        utc(2026, 1, 1),
        utc(2026, 1, 1, 23, 59),
        utc(2026, 1, 2),
    ]
    frame = pl.DataFrame({"at": instants}, schema={"at": pl.Datetime("us", "UTC")})
    got = frame.select(silence.active(pl.col("at"))).to_series().to_list()
    assert got == [False, True, True, False]
