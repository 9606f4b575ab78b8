"""Every operator of DSL.md §3, evaluated on small frames, with the missing-value rules of §2–3."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import pytest

from dsl.compiler import compile_condition, event_scope
from tests.dsl.frames import evaluate, events, labels, truth, when_of

# ---------------------------------------------------------------- string comparisons

# api, another service, a column with no value (null) and an empty one.
SERVICES = [{"service": "api"}, {"service": "web"}, {}, {"service": ""}]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('service == "api"', [True, False, False, False]),
        ('service != "api"', [False, True, True, True]),
        ('service == ""', [False, False, True, True]),
        ('service != ""', [True, True, False, False]),
        ('service < "b"', [True, False, True, True]),
        ('service <= "api"', [True, False, True, True]),
        ('service > "api"', [False, True, False, False]),
        ('service >= "api"', [True, True, False, False]),
        ('"api" == service', [True, False, False, False]),
        ('"b" > service', [True, False, True, True]),
    ],
)
def test_string_comparison_reads_a_column_without_value_as_empty(
    where: str, expected: list[bool]
) -> None:
    assert truth(where, SERVICES) == expected


# a label that is there, one with another value, a missing label, an empty one, no labels at all
ENVS = [{"env": "prod"}, {"env": "dev"}, {"other": "x"}, {"env": ""}, None]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('env == "prod"', [True, False, False, False, False]),
        ('env != "prod"', [False, True, True, True, True]),
        ('env == ""', [False, False, True, True, True]),
        ('env < "e"', [False, True, True, True, True]),
        ('env >= "dev"', [True, True, False, False, False]),
        ('env > ""', [True, True, False, False, False]),
        ('env <= "dev"', [False, True, True, True, True]),
    ],
)
def test_string_comparison_reads_a_missing_label_as_empty(where: str, expected: list[bool]) -> None:
    assert evaluate(where, labels(*ENVS)) == expected


def test_two_missing_values_are_equal_as_strings() -> None:
    frame = labels({"a": "x", "b": "x"}, {"a": "x"}, {}, {"a": "", "b": ""})
    assert evaluate("a == b", frame) == [True, False, True, True]
    assert evaluate("a != b", frame) == [False, True, False, False]


def test_a_label_and_a_column_compare_as_strings() -> None:
    frame = events(
        {"service": "api", "labels": {"want": "api"}},
        {"service": "api", "labels": {"want": "web"}},
        {"labels": {}},
    )
    assert evaluate("service == want", frame) == [True, False, True]


def test_a_string_that_looks_like_a_number_compares_as_text() -> None:
    frame = labels({"code": "200"}, {"code": "200.0"}, {"code": "0200"})
    assert evaluate('code == "200"', frame) == [True, False, False]
    assert evaluate("code == 200", frame) == [True, True, True]
    # As text, "10" sorts before "9".
    assert evaluate('code < "3"', labels({"code": "10"}, {"code": "9"})) == [True, False]


# ---------------------------------------------------------------- number comparisons

# 6, 5, 4, no value, NaN (no value either)
VALUES = [{"value": 6.0}, {"value": 5.0}, {"value": 4.0}, {}, {"value": float("nan")}]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("value == 5", [False, True, False, False, False]),
        ("value != 5", [True, False, True, False, False]),
        ("value < 5", [False, False, True, False, False]),
        ("value <= 5", [False, True, True, False, False]),
        ("value > 5", [True, False, False, False, False]),
        ("value >= 5", [True, True, False, False, False]),
        ("5 < value", [True, False, False, False, False]),
        ("value == value", [True, True, True, False, False]),
    ],
)
def test_number_comparison_with_a_column_without_value_is_false(
    where: str, expected: list[bool]
) -> None:
    assert truth(where, VALUES) == expected


RATES = [
    {"error_rate": "0.1"},
    {"error_rate": "0.01"},
    {"error_rate": "1e-1"},
    {},
    {"error_rate": ""},
    {"error_rate": "high"},
    {"error_rate": "nan"},
    {"error_rate": " 0.1"},
    {"error_rate": "1_000"},
    None,
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("error_rate > 0.05", [True, False, True, False, False, False, False, False, False, False]),
        (
            "error_rate <= 0.05",
            [False, True, False, False, False, False, False, False, False, False],
        ),
        (
            "error_rate != 0.1",
            [False, True, False, False, False, False, False, False, False, False],
        ),
        ("error_rate == 0.1", [True, False, True, False, False, False, False, False, False, False]),
        ("0.05 < error_rate", [True, False, True, False, False, False, False, False, False, False]),
    ],
)
def test_a_label_compared_with_a_number_is_read_as_a_number(
    where: str, expected: list[bool]
) -> None:
    assert evaluate(where, labels(*RATES)) == expected


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1", 1.0),
        ("-3", -3.0),
        ("+2", 2.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("2E3", 2000.0),
        ("007", 7.0),
    ],
)
def test_every_numeric_spelling_reads_as_its_number(text: str, number: float) -> None:
    assert evaluate(f"n == {number}", labels({"n": text}, {"n": "x"})) == [True, False]


def test_not_of_a_false_number_comparison_is_true() -> None:
    frame = labels({"n": "7"}, {}, {"n": "seven"})
    assert evaluate("n > 5", frame) == [True, False, False]
    assert evaluate("not n > 5", frame) == [False, True, True]
    assert evaluate("not (n <= 5)", frame) == [True, True, True]


def test_a_label_compared_with_a_label_is_text_even_when_both_look_numeric() -> None:
    # Only a number on one side makes a comparison numeric: "10" < "9" as text.
    assert evaluate("a < b", labels({"a": "10", "b": "9"})) == [True]
    assert evaluate("a + 0 < b", labels({"a": "10", "b": "9"})) == [False]


def test_durations_are_numbers_of_seconds() -> None:
    frame = labels({"age": "301"}, {"age": "300"}, {"age": "0.4"}, {})
    assert evaluate("age > 5m", frame) == [True, False, False, False]
    assert evaluate("age < 500ms", frame) == [False, False, True, False]
    assert evaluate("age == 1h - 55m", frame) == [False, True, False, False]


# ---------------------------------------------------------------- severity


SEVERITIES = [{"severity": s} for s in ("info", "low", "medium", "high", "critical")]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('severity >= "high"', [False, False, False, True, True]),
        ('severity > "high"', [False, False, False, False, True]),
        ('severity < "medium"', [True, True, False, False, False]),
        ('severity <= "medium"', [True, True, True, False, False]),
        ('severity == "medium"', [False, False, True, False, False]),
        ('severity != "medium"', [True, True, False, True, True]),
        ('"low" < severity', [False, False, True, True, True]),
        ('severity in ["info", "critical"]', [True, False, False, False, True]),
        ('severity not in ["info", "critical"]', [False, True, True, True, False]),
        ('severity =~ "^(low|high)$"', [False, True, False, True, False]),
    ],
)
def test_severity_compares_by_rank_not_alphabetically(where: str, expected: list[bool]) -> None:
    # Alphabetically "critical" < "high" < "info"; by rank info < low < medium < high < critical.
    assert truth(where, SEVERITIES) == expected


def test_severity_compared_with_a_label_reads_the_label_as_a_severity_name() -> None:
    frame = events(
        {"severity": "critical", "labels": {"floor": "high"}},
        {"severity": "medium", "labels": {"floor": "high"}},
        {"severity": "critical", "labels": {"floor": "urgent"}},
        {"severity": "critical", "labels": {}},
    )
    # A label that names no severity has no rank, so the comparison is false (§3: never null).
    assert evaluate("severity >= floor", frame) == [True, False, False, False]
    assert evaluate("not severity >= floor", frame) == [False, True, True, True]


def test_an_event_without_severity_matches_no_rank_comparison() -> None:
    frame = events({"severity": "high"}, {})
    assert evaluate('severity >= "info"', frame) == [True, False]
    assert evaluate('severity < "critical"', frame) == [True, False]
    assert evaluate('not severity >= "info"', frame) == [False, True]
    # Regex is a string operator: a severity with no value reads as "".
    assert evaluate('severity =~ "^$"', frame) == [False, True]


# ---------------------------------------------------------------- membership

HOSTS = [{"host": "web1"}, {"host": "db1"}, {}, {"host": ""}]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('host in ["web1", "web2"]', [True, False, False, False]),
        ('host not in ["web1", "web2"]', [False, True, True, True]),
        ('host in ["", "db1"]', [False, True, True, True]),
        ('host not in ["", "db1"]', [True, False, False, False]),
        ("host in []", [False, False, False, False]),
        ("host not in []", [True, True, True, True]),
        ('not host in ["web1"]', [False, True, True, True]),
    ],
)
def test_membership_in_a_list_of_strings(where: str, expected: list[bool]) -> None:
    assert truth(where, HOSTS) == expected


CODES = [{"code": "200"}, {"code": "200.0"}, {"code": "500"}, {"code": "ok"}, {}]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("code in [200, 204]", [True, True, False, False, False]),
        # `not in` is a comparison (§3): with a missing or non-numeric label it is false, like !=
        ("code not in [200, 204]", [False, False, True, False, False]),
        ("not code in [200, 204]", [False, False, True, True, True]),
        ("code != 200", [False, False, True, False, False]),
    ],
)
def test_membership_in_a_list_of_numbers_reads_the_operand_as_a_number(
    where: str, expected: list[bool]
) -> None:
    assert evaluate(where, labels(*CODES)) == expected


def test_membership_of_a_number_column() -> None:
    assert truth("value in [1, 2.5]", [{"value": 2.5}, {"value": 3.0}, {}]) == [True, False, False]
    assert truth("value not in [1, 2.5]", [{"value": 2.5}, {"value": 3.0}, {}]) == [
        False,
        True,
        False,
    ]


# ---------------------------------------------------------------- regular expressions

PATHS = labels({"path": "/api/v1/users"}, {"path": "/healthz"}, {"path": "API"}, {}, {"path": ""})


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('path =~ "api"', [True, False, False, False, False]),
        ('path =~ "^/api/"', [True, False, False, False, False]),
        ('path =~ "users$"', [True, False, False, False, False]),
        ('path =~ "^/(api|healthz)"', [True, True, False, False, False]),
        ('path =~ "v[0-9]+"', [True, False, False, False, False]),
        ('path =~ "(?i)api"', [True, False, True, False, False]),
        ('path =~ "^$"', [False, False, False, True, True]),
        ('path =~ ""', [True, True, True, True, True]),
        ('path !~ "api"', [False, True, True, True, True]),
        ('path !~ "^$"', [True, True, True, False, False]),
        ('not path =~ "api"', [False, True, True, True, True]),
    ],
)
def test_regex_is_a_search_and_a_missing_label_is_empty(where: str, expected: list[bool]) -> None:
    assert evaluate(where, PATHS) == expected


def test_regex_on_a_column() -> None:
    assert truth('host =~ "^web[0-9]$"', HOSTS) == [True, False, False, False]
    assert truth('host !~ "db"', HOSTS) == [True, False, True, True]


def test_regex_escapes_reach_the_regex_engine() -> None:
    frame = labels({"ip": "10.0.0.7"}, {"ip": "10a0b0c7"})
    assert evaluate(r'ip =~ "^10\.0\.0\.[0-9]+$"', frame) == [True, False]
    assert evaluate(r'ip =~ "\d+\.\d+"', frame) == [True, False]


# ---------------------------------------------------------------- logic

# a and b as conditions: true/true, true/false, false/true, false/false (missing counts false)
PAIRS = [{"a": "1", "b": "1"}, {"a": "1", "b": "0"}, {"a": "0", "b": "1"}, {}]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("a == 1 and b == 1", [True, False, False, False]),
        ("a == 1 or b == 1", [True, True, True, False]),
        ("not a == 1", [False, False, True, True]),
        ("not not a == 1", [True, True, False, False]),
        ("not (a == 1 and b == 1)", [False, True, True, True]),
        ("not a == 1 or not b == 1", [False, True, True, True]),
        ("(a == 1) == (b == 1)", [True, False, False, True]),
        ("(a == 1) != (b == 1)", [False, True, True, False]),
        ("a == 1 and true", [True, True, False, False]),
        ("a == 1 or false", [True, True, False, False]),
        ("true", [True, True, True, True]),
        ("false", [False, False, False, False]),
        ("not false", [True, True, True, True]),
    ],
)
def test_and_or_not(where: str, expected: list[bool]) -> None:
    assert evaluate(where, labels(*PAIRS)) == expected


# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("value + 1 == 7", [True, False, False, False]),
        ("value - 1 == 5", [True, False, False, False]),
        ("value * 2 == 12", [True, False, False, False]),
        ("value / 4 == 1.5", [True, False, False, False]),
        ("value / 0 > 0", [False, False, False, False]),
        ("value / 0 <= 0", [False, False, False, False]),
        ("-value == -6", [True, False, False, False]),
        ("-value < 0", [True, False, True, False]),
        ("value * 0 == 0", [True, True, True, False]),
        ("value - value == 0", [True, True, True, False]),
    ],
)
def test_arithmetic_on_a_number_column(where: str, expected: list[bool]) -> None:
    rows = [{"value": 6.0}, {"value": 0.0}, {"value": 1.0}, {}]
    assert truth(where, rows) == expected


def test_arithmetic_reads_labels_as_numbers_and_a_missing_one_makes_it_false() -> None:
    frame = labels({"used": "30", "total": "120"}, {"used": "30"}, {"used": "x", "total": "1"})
    assert evaluate("used / total > 0.2", frame) == [True, False, False]
    assert evaluate("used / total <= 0.2", frame) == [False, False, False]
    assert evaluate("not used / total > 0.2", frame) == [False, True, True]
    assert evaluate("used + total == 150", frame) == [True, False, False]
    assert evaluate("total - used == 90", frame) == [True, False, False]
    assert evaluate("used * 2 == 60", frame) == [True, True, False]


@pytest.mark.parametrize(
    "where",
    [
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "10 - 4 - 3 == 3",
        "10 - (4 - 3) == 9",
        "12 / 2 / 3 == 2",
        "12 / (2 / 3) == 18",
        "2 * -3 == -6",
        "-2 * 3 == -6",
        "- -3 == 3",
        "-(1 + 2) == -3",
        "7 - 2 * 3 + 1 == 2",
        "1 / 0 != 1 / 0 or true",
        "0.1 + 0.2 > 0.3",
        "1m + 30s == 90",
    ],
)
def test_arithmetic_precedence_and_associativity(where: str) -> None:
    assert truth(where, [{}]) == [True]


def test_division_by_zero_has_no_value() -> None:
    assert truth("1 / 0 == 1 / 0", [{}]) == [False]
    assert truth("not 1 / 0 == 1 / 0", [{}]) == [True]


def test_infinite_arithmetic_has_no_value() -> None:
    # inf - inf is NaN: no value, so the comparison is false either way round.
    frame = labels({"big": "1e308"})
    assert evaluate("big * 10 > 0", frame) == [True]
    assert evaluate("big * 10 - big * 10 == 0", frame) == [False]
    assert evaluate("big * 10 - big * 10 != 0", frame) == [False]


# ---------------------------------------------------------------- names


def test_a_bare_name_that_is_not_a_column_is_a_label() -> None:
    frame = events({"service": "api", "labels": {"service": "label-service", "team": "core"}})
    assert evaluate('service == "api"', frame) == [True]
    assert evaluate('labels.service == "label-service"', frame) == [True]
    assert evaluate('labels["service"] == "label-service"', frame) == [True]
    assert evaluate('team == "core" and labels.team == "core"', frame) == [True]


def test_labels_with_any_key() -> None:
    frame = labels({"k8s.io/app": "web", "with space": "x"}, {})
    assert evaluate('labels["k8s.io/app"] == "web"', frame) == [True, False]
    assert evaluate('labels["with space"] != "x"', frame) == [False, True]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (r'"a\"b"', 'a"b'),
        (r"'a\'b'", "a'b"),
        (r'"a\\b"', "a\\b"),
        (r'"a\nb"', "a\nb"),
        ("'say \"hi\"'", 'say "hi"'),
    ],
)
def test_string_escapes(literal: str, expected: str) -> None:
    assert evaluate(f"msg == {literal}", labels({"msg": expected}, {"msg": "x"})) == [True, False]


def test_time_columns_compare_with_timestamps() -> None:
    frame = events(
        {"ts": datetime(2026, 1, 1, tzinfo=UTC)}, {"ts": datetime(2026, 1, 2, tzinfo=UTC)}, {}
    )
    assert evaluate('ts >= "2026-01-01T12:00:00Z"', frame) == [False, True, False]
    assert evaluate('ts < "2026-01-01T12:00:00+01:00"', frame) == [True, False, False]


def test_closed_columns_stored_as_enums_read_as_text() -> None:
    # kind and status are pl.Enum in the canonical schema; every string operator must take them.
    frame = events(
        {"kind": "alert", "status": "firing", "service": "alert"},
        {"kind": "event", "status": "resolved", "service": "x"},
        {},
    )
    assert evaluate('kind == "alert"', frame) == [True, False, False]
    assert evaluate('status != "firing"', frame) == [False, True, True]
    assert evaluate('status in ["resolved"]', frame) == [False, True, False]
    assert evaluate('status not in ["resolved"]', frame) == [True, False, True]
    assert evaluate('kind =~ "^al"', frame) == [True, False, False]
    assert evaluate('upper(status) == "FIRING"', frame) == [True, False, False]
    assert evaluate("len(kind) == 0", frame) == [False, False, True]
    assert evaluate("kind == service", frame) == [True, False, True]
    assert evaluate("exists(status)", frame) == [True, True, False]


def test_a_condition_is_never_null() -> None:
    # Every operator over a row with nothing in it gives true or false (DSL.md §3).
    wheres = [
        'a == "x"',
        "a > 1",
        "a in [1]",
        "a not in [1]",
        'a in ["x"]',
        'a =~ "x"',
        'a !~ "x"',
        'severity >= "low"',
        'status != "firing"',
        "value + a > 1",
        "abs(a) > 1",
        'contains(a, "x")',
        "exists(a)",
        "not (a > 1 or b < 1) and not c == 1",
    ]
    frame = events({}, {"labels": {"a": ""}})
    for where in wheres:
        expr = compile_condition(when_of(where), event_scope())
        result = frame.lazy().select(expr.alias("r")).collect()["r"]
        assert result.null_count() == 0, where
        assert result.dtype == pl.Boolean, where


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: " + ".join(["a"] * n) + " > 1",  # a + a + ... (left-nested)
        lambda n: "(" * n + "a" + " / a)" * n + " > 0",  # ((a / a) / a) ...
        lambda n: "a / (" * n + "a" + ")" * n + " > 0",  # a / (a / (a / ...))
        lambda n: "abs(" * n + "-a" + ")" * n + " > 0",
        lambda n: "-(" * n + "a" + ")" * n + " < 0",
    ],
)
def test_compiled_size_grows_linearly_with_nesting(shape: Callable[[int], str]) -> None:
    # fill_nan and when/then repeat their input: applied at every level they made
    # `a + a + a + a + a + a > 1` a 30 MB expression that took 17 s on 1,000 rows.
    sizes = [len(str(compile_condition(when_of(shape(n)), event_scope()))) for n in (10, 20)]
    assert sizes[1] < 2.5 * sizes[0]
    frame = labels(*([{"a": "2"}] * 1000))
    assert len(evaluate(shape(30), frame)) == 1000
