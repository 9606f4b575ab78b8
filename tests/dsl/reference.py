"""A slow, plain-Python interpreter of `when` expressions, one event at a time, after DSL.md §2–3.

It shares nothing with dsl/compiler.py but the pattern of what reads as a number
(NUMERIC_TEXT) and the per-function reference implementations in dsl/functions.py, so the
compiled Polars expressions can be checked against it row by row.

An event is a dict of column values with `labels` a dict (or None); a missing column, label
or label map is None.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from dsl import ast
from dsl.compiler import NUMERIC_TEXT
from dsl.functions import FUNCTIONS

Event = Mapping[str, Any]


class Kind(enum.Enum):
    TEXT = "text"
    LABEL = "label"
    NUMBER = "number"
    BOOL = "bool"
    SEVERITY = "severity"
    LIST = "list"


# DSL.md §2: the canonical columns. `labels` is not a value; `ts` is left out of the reference.
COLUMN_KINDS: dict[str, Kind] = {
    **dict.fromkeys(
        (
            "kind",
            "source",
            "source_id",
            "fingerprint",
            "title",
            "description",
            "status",
            "service",
            "environment",
            "host",
        ),
        Kind.TEXT,
    ),
    "severity": Kind.SEVERITY,
    "value": Kind.NUMBER,
}
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
FUNCTION_KINDS = {
    "lower": Kind.TEXT,
    "upper": Kind.TEXT,
    "len": Kind.NUMBER,
    "abs": Kind.NUMBER,
    "contains": Kind.BOOL,
    "startswith": Kind.BOOL,
    "endswith": Kind.BOOL,
    "exists": Kind.BOOL,
}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class NotInReference(Exception):
    """A node this reference does not interpret (times, lists outside `in`)."""


def kind_of(node: ast.Expr) -> Kind:
    if isinstance(node, ast.String):
        return Kind.TEXT
    if isinstance(node, ast.Number | ast.Duration | ast.Neg | ast.Arith):
        return Kind.NUMBER
    if isinstance(node, ast.Bool | ast.Not | ast.And | ast.Or):
        return Kind.BOOL
    if isinstance(node, ast.Compare | ast.InList | ast.Regex):
        return Kind.BOOL
    if isinstance(node, ast.ListLit):
        return Kind.LIST
    if isinstance(node, ast.Column):
        if node.name not in COLUMN_KINDS:
            raise NotInReference(node.name)
        return COLUMN_KINDS[node.name]
    if isinstance(node, ast.Name | ast.Label):
        return Kind.LABEL
    if isinstance(node, ast.Call):
        return FUNCTION_KINDS[node.name]
    raise NotInReference(type(node).__name__)


def raw(node: ast.Field, event: Event) -> Any:
    """A field as it is in the event: a string, a float (maybe NaN) or None when missing."""
    if isinstance(node, ast.Column):
        return event.get(node.name)
    key = node.key if isinstance(node, ast.Label) else node.name
    found = event.get("labels")
    return found.get(key) if found is not None else None


def text(node: ast.Expr, event: Event) -> str:
    """DSL.md §2: for string operators a missing value is ""."""
    value = evaluate(node, event)
    return "" if value is None else str(value)


def number(node: ast.Expr, event: Event) -> float | None:
    """DSL.md §2: compared with a number, a label is read as one; missing or non-numeric is None."""
    value = evaluate(node, event)
    if kind_of(node) is Kind.NUMBER:
        return None if value is None or math.isnan(value) else float(value)
    # fullmatch, not match: Python's `$` also matches before a final newline, "5\n" is no number.
    if value is None or re.fullmatch(NUMERIC_TEXT, value) is None:
        return None
    return float(value)


def rank(node: ast.Expr, event: Event) -> int | None:
    """DSL.md §3: severity compares by rank; a name that is no severity has none."""
    name = text(node, event)
    return SEVERITY_ORDER.index(name) if name in SEVERITY_ORDER else None


def _no_nan(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def arithmetic(op: str, left: float | None, right: float | None) -> float | None:
    if left is None or right is None:
        return None
    if op == "+":
        return _no_nan(left + right)
    if op == "-":
        return _no_nan(left - right)
    if op == "*":
        return _no_nan(left * right)
    return None if right == 0 else _no_nan(left / right)


def compare(op: str, left: ast.Expr, right: ast.Expr, event: Event) -> bool:
    kinds = {kind_of(left), kind_of(right)}
    fn = COMPARE[op]
    if Kind.BOOL in kinds:
        return fn(evaluate(left, event), evaluate(right, event))
    if Kind.SEVERITY in kinds:
        a, b = rank(left, event), rank(right, event)
    elif Kind.NUMBER in kinds:
        a, b = number(left, event), number(right, event)
    else:
        return fn(text(left, event), text(right, event))
    # DSL.md §3: a comparison with no number (or no rank) on a side is false, never null.
    return a is not None and b is not None and fn(a, b)


def membership(node: ast.InList, event: Event) -> bool:
    items = [evaluate(i, event) for i in node.items.items]
    if items and all(isinstance(i, float) for i in items):
        n = number(node.operand, event)
        # `not in` is a comparison too (§3): without a number it is false, like `!=`.
        return n is not None and (n in items) != node.negated
    return (text(node.operand, event) in items) != node.negated


def search(pattern: str, subject: str) -> bool:
    """DSL.md §3: a search, anchored only by ^ and $; `$` is the end of the text, as in Rust."""
    return re.search(pattern.replace("$", r"\Z"), subject) is not None


def call(node: ast.Call, event: Event) -> Any:
    fn = FUNCTIONS[node.name]
    args: list[Any] = []
    for param, arg in zip(fn.params, node.args, strict=True):
        if param == "text":
            args.append(text(arg, event))
        elif param == "number":
            args.append(number(arg, event))
        else:
            assert isinstance(arg, ast.Column | ast.Name | ast.Label)
            args.append(raw(arg, event))
    return fn.reference(*args)


def evaluate(node: ast.Expr, event: Event) -> Any:
    """The value of an expression for one event: str, float, bool or None (no value)."""
    if isinstance(node, ast.String | ast.Bool):
        return node.value
    if isinstance(node, ast.Number):
        return float(node.value)
    if isinstance(node, ast.Duration):
        return node.ms / 1000
    if isinstance(node, ast.Column | ast.Name | ast.Label):
        return raw(node, event)
    if isinstance(node, ast.Neg):
        n = number(node.operand, event)
        return None if n is None else -n
    if isinstance(node, ast.Arith):
        return arithmetic(node.op, number(node.left, event), number(node.right, event))
    if isinstance(node, ast.Not):
        return not evaluate(node.operand, event)
    if isinstance(node, ast.And):
        return bool(evaluate(node.left, event)) and bool(evaluate(node.right, event))
    if isinstance(node, ast.Or):
        return bool(evaluate(node.left, event)) or bool(evaluate(node.right, event))
    if isinstance(node, ast.Compare):
        return compare(node.op, node.left, node.right, event)
    if isinstance(node, ast.InList):
        return membership(node, event)
    if isinstance(node, ast.Regex):
        assert isinstance(node.pattern, ast.String)
        return search(node.pattern.value, text(node.operand, event)) != node.negated
    if isinstance(node, ast.Call):
        return call(node, event)
    raise NotInReference(type(node).__name__)


def matches(node: ast.Expr, event: Event) -> bool:
    """Whether an event matches a condition: always True or False (DSL.md §3)."""
    result = evaluate(node, event)
    assert isinstance(result, bool), result
    return result
