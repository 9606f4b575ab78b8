"""Every function in dsl/functions.py, on present, empty and missing values."""

from __future__ import annotations

import pytest

from dsl.functions import FUNCTIONS
from tests.dsl.frames import evaluate, events, labels

# One table row per (function, condition): label maps in, one truth value per map out.
# A missing label and an empty one read as "" for the string functions (DSL.md §2).
CASES: dict[str, list[tuple[str, list[dict[str, str] | None], list[bool]]]] = {
    "lower": [
        (
            'lower(x) == "api"',
            [{"x": "API"}, {"x": "Api"}, {"x": "apis"}, {}],
            [True, True, False, False],
        ),
        ('lower(x) == ""', [{"x": ""}, {}, None, {"x": "A"}], [True, True, True, False]),
        ("lower(x) == lower(y)", [{"x": "Ab", "y": "aB"}, {"x": "a", "y": "b"}], [True, False]),
    ],
    "upper": [
        (
            'upper(x) == "PROD"',
            [{"x": "prod"}, {"x": "PrOd"}, {"x": "pro"}, {}],
            [True, True, False, False],
        ),
        ('upper(x) != "A"', [{"x": "a"}, {}], [False, True]),
    ],
    "len": [
        ("len(x) == 3", [{"x": "abc"}, {"x": "ab"}, {"x": "été"}, {}], [True, False, True, False]),
        ("len(x) == 0", [{"x": ""}, {}, None, {"x": " "}], [True, True, True, False]),
        ("len(x) > len(y)", [{"x": "aa", "y": "a"}, {"x": "a"}, {"y": "a"}], [True, True, False]),
    ],
    "abs": [
        (
            "abs(x) == 2",
            [{"x": "-2"}, {"x": "2"}, {"x": "2.5"}, {"x": "two"}, {}],
            [True, True, False, False, False],
        ),
        ("abs(x) >= 0", [{"x": "0"}, {"x": "-0.1"}, {}, {"x": ""}], [True, True, False, False]),
        ("not abs(x) > 1", [{"x": "-5"}, {}], [False, True]),
        (
            "abs(x - y) < 1",
            [{"x": "3", "y": "3.5"}, {"x": "3", "y": "5"}, {"x": "3"}],
            [True, False, False],
        ),
    ],
    "contains": [
        (
            'contains(x, "disk")',
            [{"x": "disk full"}, {"x": "a disk"}, {"x": "Disk"}, {}],
            [True, True, False, False],
        ),
        ('contains(x, "")', [{"x": "a"}, {"x": ""}, {}, None], [True, True, True, True]),
        # The needle is text, not a regular expression.
        ('contains(x, ".*")', [{"x": "a.*b"}, {"x": "ab"}], [True, False]),
        (
            "contains(x, y)",
            [{"x": "abc", "y": "b"}, {"x": "abc", "y": "d"}, {"x": "abc"}],
            [True, False, True],
        ),
    ],
    "startswith": [
        (
            'startswith(x, "web")',
            [{"x": "web1"}, {"x": "aweb"}, {"x": "WEB1"}, {}],
            [True, False, False, False],
        ),
        ('startswith(x, "")', [{"x": "a"}, {}], [True, True]),
        ("startswith(x, y)", [{"x": "web1", "y": "web"}, {"x": "web1", "y": "db"}], [True, False]),
    ],
    "endswith": [
        (
            'endswith(x, ".com")',
            [{"x": "a.com"}, {"x": "a.comx"}, {"x": "acom"}, {}],
            [True, False, False, False],
        ),
        ('endswith(x, "")', [{"x": "a"}, {}], [True, True]),
        ('not endswith(x, "z")', [{"x": "abz"}, {}], [False, True]),
    ],
    "exists": [
        (
            "exists(x)",
            [{"x": "1"}, {"x": "0"}, {"x": " "}, {"x": ""}, {}, None],
            [True, True, True, False, False, False],
        ),
        ("exists(labels.x)", [{"x": "a"}, {"x": ""}, {}], [True, False, False]),
        ('exists(labels["x-y"])', [{"x-y": "a"}, {"x": "a"}], [True, False]),
        ("not exists(x)", [{"x": "a"}, {"x": ""}, {}], [False, True, True]),
    ],
}


def test_every_function_has_cases() -> None:
    # Adding a row to FUNCTIONS takes a case here too (STYLE.md §4).
    assert set(CASES) == set(FUNCTIONS)


@pytest.mark.parametrize(
    ("where", "maps", "expected"),
    [case for cases in CASES.values() for case in cases],
)
def test_function_on_labels(
    where: str, maps: list[dict[str, str] | None], expected: list[bool]
) -> None:
    assert evaluate(where, labels(*maps)) == expected


def test_string_functions_read_a_column_without_value_as_empty() -> None:
    frame = events({"host": "Web1"}, {"host": ""}, {})
    assert evaluate('lower(host) == "web1"', frame) == [True, False, False]
    assert evaluate('upper(host) == ""', frame) == [False, True, True]
    assert evaluate("len(host) == 0", frame) == [False, True, True]
    assert evaluate('contains(host, "eb")', frame) == [True, False, False]
    assert evaluate('startswith(host, "W")', frame) == [True, False, False]
    assert evaluate('endswith(host, "1")', frame) == [True, False, False]


def test_exists_on_columns() -> None:
    frame = events(
        {"host": "a", "value": 0.0, "severity": "info"},
        {"host": "", "value": -1.0},
        {},
    )
    assert evaluate("exists(host)", frame) == [True, False, False]
    # 0 is a value: exists asks whether there is one, not whether it is truthy.
    assert evaluate("exists(value)", frame) == [True, True, False]
    assert evaluate("exists(severity)", frame) == [True, False, False]


def test_abs_of_a_column_and_of_arithmetic() -> None:
    frame = events({"value": -3.0}, {"value": 2.0}, {})
    assert evaluate("abs(value) == 3", frame) == [True, False, False]
    assert evaluate("abs(value - 5) == 3", frame) == [False, True, False]
    assert evaluate("abs(-value) == value", frame) == [False, True, False]


def test_functions_nest() -> None:
    frame = labels({"x": "Web-01"}, {"x": "db"}, {})
    assert evaluate('startswith(lower(x), "web")', frame) == [True, False, False]
    assert evaluate("len(upper(x)) == 6", frame) == [True, False, False]
    assert evaluate('contains(upper(x), "-0")', frame) == [True, False, False]
    assert evaluate('lower(x) =~ "^web-[0-9]+$"', frame) == [True, False, False]
    assert evaluate('lower(x) in ["db", ""]', frame) == [False, True, True]
