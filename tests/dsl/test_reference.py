"""Property: compiled conditions agree, row by row, with the plain-Python reference evaluator."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import ast
from dsl.compiler import Scope, compile_condition, event_scope
from dsl.printer import print_expr, print_number
from tests.dsl import reference, strategies
from tests.dsl.frames import events, labels, when_of


def run(condition: ast.Expr, frame: pl.DataFrame, scope: Scope) -> list[bool]:
    expr = compile_condition(condition, scope)
    out = frame.lazy().with_columns(expr.alias("__matched")).collect()["__matched"]
    assert out.dtype == pl.Boolean
    return out.to_list()


def extracted(frame: pl.DataFrame) -> tuple[pl.DataFrame, Scope]:
    """Labels read from columns extracted once, as the engine and the benchmark do."""
    columns = [pl.col("labels").map.get(k).alias(f"label:{k}") for k in strategies.LABEL_KEYS]
    return frame.with_columns(columns), event_scope(lambda key: pl.col(f"label:{key}"))


@pytest.mark.hypothesis
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    condition=strategies.conditions,
    rows=st.lists(strategies.event_rows, min_size=1, max_size=8),
)
def test_compiled_conditions_agree_with_the_reference(
    condition: ast.Expr, rows: list[dict[str, Any]]
) -> None:
    expected = [reference.matches(condition, row) for row in rows]
    frame = events(*rows)
    shown = print_expr(condition)
    assert run(condition, frame, event_scope()) == expected, shown
    assert run(condition, *extracted(frame)) == expected, shown


# The reference itself, on the cases DSL.md spells out: if it drifted, the property would
# compare the compiler with the wrong thing.
@pytest.mark.parametrize(
    ("where", "event", "expected"),
    [
        ('x == ""', {"labels": {}}, True),
        ("x > 1", {"labels": {}}, False),
        ("not x > 1", {"labels": {}}, True),
        ("x > 1", {"labels": {"x": "abc"}}, False),
        ("x != 1", {"labels": {"x": "abc"}}, False),
        ("x > 1", {"labels": {"x": "1e1"}}, True),
        ("x > 1", {"labels": {"x": "5\n"}}, False),
        ('severity >= "high"', {"severity": "critical"}, True),
        ('severity >= "high"', {"severity": "medium"}, False),
        ('x =~ "b"', {"labels": {"x": "abc"}}, True),
        ('x =~ "^b"', {"labels": {"x": "abc"}}, False),
        ('x =~ "c$"', {"labels": {"x": "abc\n"}}, False),
        ("x not in [1]", {"labels": {}}, False),
        ('x not in ["1"]', {"labels": {}}, True),
        ("value / 0 == value / 0", {"value": 1.0}, False),
        ("exists(x)", {"labels": {"x": ""}}, False),
        ("len(x) == 0", {}, True),
    ],
)
def test_the_reference_follows_dsl_md(where: str, event: dict[str, Any], expected: bool) -> None:
    condition = when_of(where)
    assert reference.matches(condition, event) is expected
    assert run(condition, events(event), event_scope()) == [expected]


def test_a_label_with_a_newline_is_text_not_a_number() -> None:
    # Rust's `$` is the end of the text; Python's would also match before the final "\n".
    assert run(when_of("x > 1"), labels({"x": "5\n"}, {"x": "5"}), event_scope()) == [False, True]


# ---------------------------------------------------------------- a grid, for the edges
# Random search rarely puts "inf" in the one label a comparison reads; this grid pairs every
# simple shape with every edge value, and checks them all in one lazy query.


def _grid_conditions() -> list[str]:
    ops = ("==", "!=", "<", "<=", ">", ">=")
    texts = [f'"{t}"' for t in strategies.TEXT_LITERALS]
    numbers = [("-" if n < 0 else "") + print_number(abs(n)) for n in strategies.NUMBER_LITERALS]
    out: list[str] = []
    for op in ops:
        out += [f"a {op} {t}" for t in texts] + [f"{t} {op} a" for t in texts]
        out += [f"service {op} {t}" for t in texts] + [f"lower(a) {op} {t}" for t in texts]
        out += [f"a {op} {n}" for n in numbers] + [f"{n} {op} a" for n in numbers]
        out += [f"value {op} {n}" for n in numbers] + [f"service {op} {n}" for n in numbers]
        out += [f"a {op} b", f"a {op} service", f"a {op} value", f"value {op} value"]
        out += [f"a {arith} b {op} 1" for arith in "+-*/"]
        out += [f"value {arith} a {op} 0" for arith in "+-*/"]
        out += [f"-a {op} 1", f"abs(a) {op} 1", f"len(a) {op} 1", f"a {op} 1m"]
        out += [f'severity {op} "{s}"' for s in strategies.SEVERITY_NAMES]
        out += [f"severity {op} a", f"a {op} severity"]
    for negated in ("in", "not in"):
        out += [f"a {negated} [{t}]" for t in texts] + [f"a {negated} []"]
        out += [f"a {negated} [{n}]" for n in numbers] + [f"value {negated} [0, 1]"]
        out += [f'severity {negated} ["high", "info"]', f'status {negated} ["firing"]']
    for pattern in ("", "^$", "a", "^a", "b$", "[0-9]", "^-?[0-9]+$", "é", ". ", "^(a|h)"):
        out += [f'a =~ "{pattern}"', f'a !~ "{pattern}"', f'severity =~ "{pattern}"']
    for fn in ("contains", "startswith", "endswith"):
        out += [f"{fn}(a, {t})" for t in texts] + [f"{fn}(a, b)", f"{fn}(service, a)"]
    out += ["exists(a)", "exists(service)", "exists(value)", "exists(severity)"]
    out += [f"upper(a) == {t}" for t in texts]
    return out


def _grid_rows() -> list[dict[str, Any]]:
    values = [*strategies.LABEL_VALUES, None]
    floats = [None, float("nan"), 0.0, -0.0, 1.0, -1.0, 2.5, 1e308, float("inf"), -float("inf")]
    pools = {
        "service": [None, "", "api", "1", "2.5", "é", "high"],
        "severity": [None, *strategies.SEVERITY_NAMES],
        "status": [None, "firing", "resolved"],
    }
    b_values = (None, "1", "0", "1e999", "abc", "-2.5")
    rows: list[dict[str, Any]] = [{"labels": None}, {"labels": {}}]
    # every label value with every number, the other columns cycling through their pools
    for i, a in enumerate(values):
        for j, value in enumerate(floats):
            n = i * len(floats) + j
            row: dict[str, Any] = {"labels": {"a": a, "b": b_values[n % len(b_values)]}}
            row |= {column: pool[n % len(pool)] for column, pool in pools.items()}
            rows.append(row | {"value": value})
    return rows


def test_compiled_conditions_agree_with_the_reference_on_every_edge() -> None:
    rows = _grid_rows()
    conditions = [when_of(text) for text in _grid_conditions()]
    frame = events(*rows)
    exprs = [compile_condition(c, event_scope()).alias(f"c{i}") for i, c in enumerate(conditions)]
    got = frame.lazy().with_columns(exprs).collect()
    for i, condition in enumerate(conditions):
        expected = [reference.matches(condition, row) for row in rows]
        column = got[f"c{i}"].to_list()
        wrong = [row for row, g, e in zip(rows, column, expected, strict=True) if g != e]
        assert not wrong, f"{print_expr(condition)}: {wrong[:3]}"
