"""Syntax tree → Polars expressions, implementing DSL.md §2–3 exactly.

Every comparison closes its own nulls (STYLE.md §3): a missing string reads as "" for string
operators, a failed numeric read makes a number comparison false, and so `not` of a false
comparison is true. Handlers are registered per node class; the handler of node `Compare` is
`compare_expr`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from dsl import ast
from dsl.ast import Field as AstField
from dsl.errors import (
    BadRegexError,
    BadScheduleError,
    DslError,
    DslErrors,
    DuplicateIdError,
    RuleSemanticError,
    TypeMismatchError,
    UnknownFunctionError,
    UnknownSeverityError,
)
from dsl.fields import (
    ALERT_NAMES,
    CLOSED_VALUES,
    DAY_NAMES,
    EVENT_COLUMNS,
    SEVERITIES,
    SEVERITY_RANK,
    Kind,
    closest,
)
from dsl.functions import AGGREGATES, FUNCTIONS, NUMBER, PREV, TEXT, Aggregate
from dsl.printer import print_expr
from dsl.templates import Template, parse_template

# A label is a number when it reads as one (no "nan", "inf" or "1_000"); the reference
# evaluator in the tests uses the same pattern.
NUMERIC_TEXT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


class _Comparison(Protocol):
    """An `operator` comparison: on a Polars expression it builds one, on Python values it
    returns the plain result (a literal's value compared with "" to fill nulls)."""

    @overload
    def __call__(self, a: pl.Expr, b: Any, /) -> pl.Expr: ...
    @overload
    def __call__(self, a: Any, b: Any, /) -> Any: ...


_T = TypeVar("_T")

_COMPARE: dict[str, _Comparison] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NO_CONST = object()


@dataclass(frozen=True)
class Typed:
    """A compiled sub-expression, its kind and, for literals, its Python value."""

    expr: pl.Expr
    kind: Kind
    const: Any = _NO_CONST
    node: Any = None

    @property
    def is_const(self) -> bool:
        return self.const is not _NO_CONST


def label_expr(key: str) -> pl.Expr:
    """The default way to read a label: from the `labels` map column."""
    return pl.col("labels").map.get(key)


@dataclass
class Scope:
    """How names resolve in one kind of frame: events (rules) or alerts (routes and the rest).

    `label` builds the expression reading one label; the engine passes one that reads columns
    it extracted once per batch. Every label read is recorded in `labels_used`.
    """

    names: dict[str, Kind]
    label: Callable[[str], pl.Expr] = label_expr
    labels_used: set[str] = field(default_factory=set)

    def resolve(self, node: ast.Column | ast.Name | ast.Label) -> Typed:
        if isinstance(node, ast.Label):
            return self._label(node.key, node)
        kind = self.names.get(node.name)
        if kind is None:
            return self._label(node.name, node)
        if kind is Kind.MAP:
            raise TypeMismatchError(
                f"'{node.name}' is the whole label map; name one label: labels.KEY",
                line=node.span.line,
                column=node.span.column,
            )
        return Typed(pl.col(node.name), kind, node=node)

    def _label(self, key: str, node: Any) -> Typed:
        self.labels_used.add(key)
        return Typed(self.label(key), Kind.LABEL, node=node)


def event_scope(label: Callable[[str], pl.Expr] = label_expr) -> Scope:
    return Scope(dict(EVENT_COLUMNS), label)


def alert_scope(label: Callable[[str], pl.Expr] = label_expr) -> Scope:
    return Scope({**EVENT_COLUMNS, **ALERT_NAMES}, label)


def _fail(node: Any, message: str, error: type[DslError] = TypeMismatchError) -> DslError:
    span = getattr(node, "span", ast.NO_SPAN)
    return error(message, line=span.line, column=span.column)


def _shown(node: Any) -> str:
    try:
        return f"'{print_expr(node)}'"
    except Exception:
        return "this"


# ---------------------------------------------------------------- reading operands


def as_text(t: Typed) -> pl.Expr:
    """The operand as a string, missing → ""."""
    if t.kind in (Kind.TEXT, Kind.LABEL):
        # kind and status are pl.Enum columns: cast, or string functions and fill_null("") fail.
        return t.expr if t.is_const else t.expr.cast(pl.String).fill_null("")
    if t.kind is Kind.SEVERITY:
        return t.expr.cast(pl.String).fill_null("")
    raise _fail(t.node, f"{_shown(t.node)} is {_article(t.kind)}, not text")


def as_number(t: Typed, *, nan_to_null: bool = True) -> pl.Expr:
    """The operand as a number; missing, non-numeric or NaN → null (no value).

    Arithmetic passes `nan_to_null=False` and leaves NaN to the comparison that reads its
    result: Polars expands fill_nan into a when/then that repeats its input three times, so
    filling at every level of `a + b + c + ...` made the expression grow 9x per term.
    """
    if t.kind is Kind.NUMBER:
        if t.is_const:
            return t.expr
        number = t.expr.cast(pl.Float64)
        return number.fill_nan(None) if nan_to_null else number
    if t.kind in (Kind.LABEL, Kind.TEXT) and not t.is_const:
        text = t.expr.cast(pl.String)
        return pl.when(text.str.contains(NUMERIC_TEXT)).then(text.cast(pl.Float64, strict=False))
    raise _fail(t.node, f"{_shown(t.node)} is {_article(t.kind)}, not a number")


def _article(kind: Kind) -> str:
    return {
        Kind.TEXT: "text",
        Kind.LABEL: "a label",
        Kind.NUMBER: "a number",
        Kind.BOOL: "a condition",
        Kind.SEVERITY: "a severity",
        Kind.TIME: "a time",
        Kind.LIST: "a list",
        Kind.MAP: "a map",
    }[kind]


def as_condition(t: Typed) -> pl.Expr:
    if t.kind is not Kind.BOOL:
        raise _fail(
            t.node,
            f"{_shown(t.node)} is {_article(t.kind)}, not a condition; compare it, "
            f'e.g. {print_expr(t.node) if t.node is not None else "x"} == "..."',
        )
    return t.expr


def _severity_rank(t: Typed) -> pl.Expr:
    """Rank of a severity operand: info=0 … critical=4; anything else → null."""
    if t.kind is Kind.SEVERITY:
        # The severity column is the Enum of DESIGN.md §3, ordered by rank: its physical value
        # is the rank, and reading it is ten times cheaper than mapping names.
        return t.expr.to_physical().cast(pl.Int8)
    if t.is_const:
        return pl.lit(SEVERITY_RANK[_known_severity(t)], dtype=pl.Int8)
    return as_text(t).replace_strict(SEVERITY_RANK, default=None, return_dtype=pl.Int8)


def _known_severity(t: Typed) -> str:
    name = str(t.const)
    if name not in SEVERITY_RANK:
        span = getattr(t.node, "span", ast.NO_SPAN)
        raise UnknownSeverityError(
            f"unknown severity '{name}'; severities are {', '.join(SEVERITIES)}",
            line=span.line,
            column=span.column,
            hint=closest(name, SEVERITIES),
        )
    return name


def _check_closed(column: Typed, literal: Typed) -> None:
    """`status == "fireing"` can never be true: say so instead of silently matching nothing."""
    name = getattr(column.node, "name", None)
    if not isinstance(column.node, ast.Column) or name not in CLOSED_VALUES or not literal.is_const:
        return
    values = CLOSED_VALUES[name]
    if name == "severity":
        _known_severity(literal)
    elif isinstance(literal.const, str) and literal.const not in values:
        raise _fail(
            literal.node,
            f"'{literal.const}' is not a {name}; a {name} is one of {', '.join(values)}",
            RuleSemanticError,
        )


# ---------------------------------------------------------------- node handlers


def string_expr(node: ast.String, scope: Scope) -> Typed:
    return Typed(pl.lit(node.value, dtype=pl.String), Kind.TEXT, node.value, node)


def number_expr(node: ast.Number, scope: Scope) -> Typed:
    return Typed(pl.lit(float(node.value), dtype=pl.Float64), Kind.NUMBER, float(node.value), node)


def bool_expr(node: ast.Bool, scope: Scope) -> Typed:
    return Typed(pl.lit(node.value, dtype=pl.Boolean), Kind.BOOL, node.value, node)


def duration_expr(node: ast.Duration, scope: Scope) -> Typed:
    return Typed(pl.lit(node.seconds, dtype=pl.Float64), Kind.NUMBER, node.seconds, node)


def list_lit_expr(node: ast.ListLit, scope: Scope) -> Typed:
    raise _fail(node, "a list can only follow 'in' or 'not in'")


def field_expr(node: ast.Column | ast.Name | ast.Label, scope: Scope) -> Typed:
    return scope.resolve(node)


def neg_expr(node: ast.Neg, scope: Scope) -> Typed:
    inner = compile_typed(node.operand, scope)
    if inner.is_const and inner.kind is Kind.NUMBER:
        return Typed(pl.lit(-inner.const, dtype=pl.Float64), Kind.NUMBER, -inner.const, node)
    return Typed(-as_number(inner, nan_to_null=False), Kind.NUMBER, node=node)


def not_expr(node: ast.Not, scope: Scope) -> Typed:
    return Typed(~as_condition(compile_typed(node.operand, scope)), Kind.BOOL, node=node)


def and_expr(node: ast.And, scope: Scope) -> Typed:
    left = as_condition(compile_typed(node.left, scope))
    return Typed(left & as_condition(compile_typed(node.right, scope)), Kind.BOOL, node=node)


def or_expr(node: ast.Or, scope: Scope) -> Typed:
    left = as_condition(compile_typed(node.left, scope))
    return Typed(left | as_condition(compile_typed(node.right, scope)), Kind.BOOL, node=node)


def arith_expr(node: ast.Arith, scope: Scope) -> Typed:
    left = as_number(compile_typed(node.left, scope), nan_to_null=False)
    right = as_number(compile_typed(node.right, scope), nan_to_null=False)
    if node.op == "+":
        out = left + right
    elif node.op == "-":
        out = left - right
    elif node.op == "*":
        out = left * right
    else:
        out = _divide(left, right, node.right)
    # inf - inf and 0 * inf are NaN, which Polars ranks above every number: as_number makes it
    # no value where the result is read.
    return Typed(out, Kind.NUMBER, node=node)


def _divide(left: pl.Expr, right: pl.Expr, divisor: Any) -> pl.Expr:
    """Division by zero has no value, so any comparison with it is false.

    when/then names the divisor twice, which Polars shares (CSE) when it is a field or a
    number; a compound divisor goes through replace, which names it once (so a / (b / (c / d))
    does not double per level) but is slower and not shared.
    """
    if isinstance(divisor, ast.Column | ast.Name | ast.Label | ast.Number | ast.Duration):
        return pl.when(right != 0).then(left / right)
    return left / right.replace(0.0, None)


def compare_expr(node: ast.Compare, scope: Scope) -> Typed:
    left = compile_typed(node.left, scope)
    right = compile_typed(node.right, scope)
    return Typed(compare_typed(node.op, left, right, node), Kind.BOOL, node=node)


def compare_typed(op: str, left: Typed, right: Typed, node: Any) -> pl.Expr:
    """One comparison, null-closed, reading operands by DSL.md §2–3."""
    fn = _COMPARE[op]
    kinds = {left.kind, right.kind}
    if Kind.LIST in kinds or Kind.MAP in kinds:
        raise _fail(node, "a list can only follow 'in' or 'not in'")
    if Kind.BOOL in kinds:
        if kinds != {Kind.BOOL}:
            raise _fail(node, "a condition can only be compared with another condition")
        if op not in ("==", "!="):
            raise _fail(node, f"conditions cannot be ordered with '{op}'")
        return fn(left.expr, right.expr)
    if Kind.TIME in kinds:
        return _compare_time(op, left, right, node)
    if Kind.SEVERITY in kinds:
        if Kind.NUMBER in kinds:
            raise _fail(node, 'a severity compares with a severity name, e.g. severity >= "high"')
        for a, b in ((left, right), (right, left)):
            if a.kind is Kind.SEVERITY:
                _check_closed(a, b)
        return fn(_severity_rank(left), _severity_rank(right)).fill_null(False)
    for a, b in ((left, right), (right, left)):
        _check_closed(a, b)
    if Kind.NUMBER in kinds:
        for t in (left, right):
            if t.is_const and t.kind is Kind.TEXT:
                raise _fail(
                    t.node,
                    f"a number cannot be compared with the string {_shown(t.node)}"
                    + (f"; write {t.const} without quotes" if _is_number(t.const) else ""),
                )
        return fn(as_number(left), as_number(right)).fill_null(False)
    return _compare_text(fn, left, right)


def _is_number(text: Any) -> bool:
    return isinstance(text, str) and re.match(NUMERIC_TEXT, text) is not None


def _compare_text(fn: _Comparison, left: Typed, right: Typed) -> pl.Expr:
    # With a literal on one side, compare the raw column and fill nulls with what "" would
    # give: the same result as filling "" first, without touching every row.
    if right.is_const and not left.is_const:
        return fn(left.expr, right.expr).fill_null(bool(fn("", right.const)))
    if left.is_const and not right.is_const:
        return fn(left.expr, right.expr).fill_null(bool(fn(left.const, "")))
    return fn(as_text(left), as_text(right))


def _compare_time(op: str, left: Typed, right: Typed, node: Any) -> pl.Expr:
    def as_time(t: Typed) -> pl.Expr:
        if t.kind is Kind.TIME:
            return t.expr
        if t.is_const and isinstance(t.const, str):
            try:
                value = datetime.fromisoformat(t.const.replace("Z", "+00:00"))
            except ValueError:
                raise _fail(
                    t.node, f"'{t.const}' is not a timestamp like 2026-01-01T00:00:00Z"
                ) from None
            if value.tzinfo is None:
                raise _fail(t.node, f"'{t.const}' needs a time zone, e.g. a trailing Z")
            return pl.lit(value).dt.cast_time_unit("us").dt.convert_time_zone("UTC")
        raise _fail(t.node, 'a time compares only with a timestamp like "2026-01-01T00:00:00Z"')

    return _COMPARE[op](as_time(left), as_time(right)).fill_null(False)


def in_list_expr(node: ast.InList, scope: Scope) -> Typed:
    operand = compile_typed(node.operand, scope)
    items = [compile_typed(i, scope) for i in node.items.items]
    for item in items:
        if not item.is_const or item.kind not in (Kind.TEXT, Kind.NUMBER):
            raise _fail(item.node, "list items must be strings or numbers")
    kinds = {i.kind for i in items}
    if len(kinds) > 1:
        raise _fail(node.items, "a list mixes strings and numbers; use one or the other")
    values = [i.const for i in items]
    if Kind.NUMBER in kinds:
        if operand.kind is Kind.SEVERITY:
            raise _fail(node, "a severity is in a list of severity names, not numbers")
        found = as_number(operand).is_in(pl.lit(values, dtype=pl.List(pl.Float64)))
        # DSL.md §3: `not in` is a comparison too, so no number makes it false, as with `!=`.
        return Typed((~found if node.negated else found).fill_null(False), Kind.BOOL, node=node)
    else:
        if operand.kind is Kind.SEVERITY:
            for item in items:
                _known_severity(item)
        elif operand.kind in (Kind.TEXT, Kind.LABEL):
            for item in items:
                _check_closed(operand, item)
        elif operand.kind is Kind.NUMBER:
            raise _fail(node.items, "a number is in a list of numbers, not strings")
        else:
            raise _fail(node.operand, f"{_shown(node.operand)} cannot be in a list")
        found = as_text(operand).is_in(pl.lit(values, dtype=pl.List(pl.String)))
    return Typed(~found if node.negated else found, Kind.BOOL, node=node)


def regex_expr(node: ast.Regex, scope: Scope) -> Typed:
    operand = compile_typed(node.operand, scope)
    pattern = compile_typed(node.pattern, scope)
    if not (pattern.is_const and pattern.kind is Kind.TEXT):
        raise _fail(
            node.pattern, "the right side of =~ and !~ must be a string: a regular expression"
        )
    check_regex(pattern.const, node.pattern)
    found = as_text(operand).str.contains(pattern.const)
    return Typed(~found if node.negated else found, Kind.BOOL, node=node)


def check_regex(pattern: str, node: Any) -> None:
    """A pattern that Polars' regex engine rejects is an error at the pattern."""
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip().startswith("error:")]
        reason = lines[0].removeprefix("error:").strip() if lines else "it does not compile"
        raise _fail(node, f"bad regular expression: {reason}", BadRegexError) from None


def call_expr(node: ast.Call, scope: Scope) -> Typed:
    fn = FUNCTIONS.get(node.name)
    if fn is None:
        if node.name in AGGREGATES or node.name == PREV:
            raise _fail(
                node,
                f"{node.name}() is a window aggregate; use it in a window condition, "
                "e.g. count() > 5 within 1m",
                UnknownFunctionError,
            )
        raise UnknownFunctionError(
            f"unknown function '{node.name}'; functions are {', '.join(FUNCTIONS)}",
            line=node.span.line,
            column=node.span.column,
            hint=closest(node.name, FUNCTIONS),
        )
    if len(node.args) != len(fn.params):
        plural = "s" if len(fn.params) != 1 else ""
        raise _fail(
            node,
            f"{fn.name}() takes {len(fn.params)} argument{plural}, got {len(node.args)}: {fn.doc}",
            UnknownFunctionError,
        )
    built: list[pl.Expr] = []
    for param, arg in zip(fn.params, node.args, strict=True):
        t = compile_typed(arg, scope)
        if param == TEXT:
            built.append(as_text(t))
        elif param == NUMBER:
            built.append(as_number(t, nan_to_null=False))
        else:
            if not isinstance(arg, ast.Column | ast.Name | ast.Label):
                raise _fail(arg, f"{fn.name}() takes a field name, like {fn.name}(service)")
            built.append(t.expr)
    out = fn.build(*built)
    if fn.result is Kind.BOOL:
        out = out.fill_null(False)
    return Typed(out, fn.result, node=node)


_HANDLERS: dict[type, Callable[[Any, Scope], Typed]] = {
    ast.String: string_expr,
    ast.Number: number_expr,
    ast.Bool: bool_expr,
    ast.Duration: duration_expr,
    ast.ListLit: list_lit_expr,
    ast.Column: field_expr,
    ast.Name: field_expr,
    ast.Label: field_expr,
    ast.Neg: neg_expr,
    ast.Not: not_expr,
    ast.And: and_expr,
    ast.Or: or_expr,
    ast.Arith: arith_expr,
    ast.Compare: compare_expr,
    ast.InList: in_list_expr,
    ast.Regex: regex_expr,
    ast.Call: call_expr,
}


class InternalCompilerError(RuntimeError):
    """A node type the compiler has no handler for: a bug in Klaxon, not in the rules."""


def compile_typed(node: Any, scope: Scope) -> Typed:
    handler = _HANDLERS.get(type(node))
    if handler is None:
        raise InternalCompilerError(f"no compiler handler for {type(node).__name__}")
    return handler(node, scope)


def compile_condition(node: ast.Expr, scope: Scope | None = None) -> pl.Expr:
    """A `when`-style expression → a Boolean Polars expression that is never null."""
    return as_condition(compile_typed(node, scope or event_scope()))


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class AggSpec:
    """One aggregate: which, over what field (read as number or text), at which quantile."""

    name: str
    field: pl.Expr | None
    quantile: float | None
    # dataclasses.field: the `field` attribute above shadows the name in this class body.
    node: ast.Call = dataclasses.field(compare=False)

    @property
    def reads_text(self) -> bool:
        return self.name == "count_distinct"


@dataclass(frozen=True)
class WindowSpec:
    """`AGG OP THRESHOLD within W`; the threshold reads prev(AGG)s from columns `__prev{i}`."""

    agg: AggSpec
    op: str
    threshold: pl.Expr
    prev: tuple[AggSpec, ...]
    duration_ms: int

    def condition(self, agg: pl.Expr) -> pl.Expr:
        """`agg OP threshold`; false where either side is no value: null, or NaN (the mean of
        +inf and -inf), which Polars would order above every number."""
        held = _COMPARE[self.op](agg, self.threshold)
        held = held & agg.is_not_nan() & self.threshold.cast(pl.Float64).is_not_nan()
        return held.fill_null(False)


def _compile_agg(node: Any, scope: Scope) -> AggSpec:
    if not isinstance(node, ast.Call) or node.name not in AGGREGATES:
        hint = closest(node.name, AGGREGATES) if isinstance(node, ast.Call) else None
        raise UnknownFunctionError(
            f"{_shown(node)} is not a window aggregate; use one of {', '.join(AGGREGATES)}",
            line=node.span.line,
            column=node.span.column,
            hint=hint,
        )
    agg: Aggregate = AGGREGATES[node.name]
    want = 1 if agg.takes_field else 0
    if len(node.args) != want:
        raise _fail(
            node,
            f"{agg.name}() takes {'a field' if want else 'no arguments'}: {agg.doc}",
            UnknownFunctionError,
        )
    expr: pl.Expr | None = None
    if agg.takes_field:
        arg = node.args[0]
        if not isinstance(arg, ast.Column | ast.Name | ast.Label):
            raise _fail(arg, f"{agg.name}() takes a field name, like {agg.name}(latency_ms)")
        t = scope.resolve(arg)
        expr = as_text(t) if agg.reads == TEXT else as_number(t)
    return AggSpec(agg.name, expr, agg.quantile, node)


def compile_window(window: ast.Window, scope: Scope) -> WindowSpec:
    agg = _compile_agg(window.agg, scope)
    prevs: list[AggSpec] = []

    def threshold(node: Any) -> pl.Expr:
        if isinstance(node, ast.Call) and node.name == PREV:
            if len(node.args) != 1:
                raise _fail(
                    node, "prev() takes one aggregate, like prev(count())", UnknownFunctionError
                )
            prevs.append(_compile_agg(node.args[0], scope))
            return pl.col(f"__prev{len(prevs) - 1}")
        if isinstance(node, ast.Number | ast.Duration):
            return compile_typed(node, scope).expr
        if isinstance(node, ast.Neg):
            return -threshold(node.operand)
        if isinstance(node, ast.Arith):
            left, right = threshold(node.left), threshold(node.right)
            if node.op == "+":
                return left + right
            if node.op == "-":
                return left - right
            if node.op == "*":
                return left * right
            return _divide(left, right, node.right)
        raise _fail(
            node,
            "a window threshold is a number or arithmetic on numbers and prev(AGG)",
        )

    return WindowSpec(agg, window.op, threshold(window.threshold), tuple(prevs), window.duration.ms)


# ---------------------------------------------------------------- templates


def compile_template(template: Template, scope: Scope) -> pl.Expr:
    """A template → a String expression; missing fields render empty."""
    if template.is_constant:
        return pl.lit(template.source, dtype=pl.String)
    parts: list[pl.Expr] = []
    for part in template.parts:
        if isinstance(part, str):
            parts.append(pl.lit(part, dtype=pl.String))
        else:
            parts.append(render_value(scope.resolve(part)))
    return pl.concat_str(parts, ignore_nulls=True)


def render_value(t: Typed) -> pl.Expr:
    """How a value reads in a template: numbers without a needless `.0`, names as they are."""
    if t.kind is Kind.NUMBER:
        x = t.expr.cast(pl.Float64)
        return (
            pl.when(x.is_finite() & (x == x.round(0)) & (x.abs() < 1e15))
            .then(x.cast(pl.Int64).cast(pl.String))
            .otherwise(x.round_sig_figs(6).cast(pl.String))
            .fill_null("")
        )
    if t.kind is Kind.TIME:
        return t.expr.dt.to_string("%Y-%m-%dT%H:%M:%SZ").fill_null("")
    return t.expr.cast(pl.String).fill_null("")


# ---------------------------------------------------------------- silences' recurring windows


@dataclass(frozen=True)
class DuringSpec:
    """`during DAYS HH:MM-HH:MM in TZ`: weekdays (0=Monday), minutes of the day, a zone."""

    days: frozenset[int]
    start_minute: int
    end_minute: int
    tz: str

    def active(self, at: pl.Expr) -> pl.Expr:
        """Whether instants `at` (UTC) fall in the window, in the zone's wall-clock time.

        A window that crosses midnight belongs to the day it starts (DSL.md §5).
        """
        local = at.dt.convert_time_zone(self.tz)
        weekday = local.dt.weekday() - 1  # Polars: Monday=1
        minute = local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)
        days = pl.lit(sorted(self.days), dtype=pl.List(pl.Int8))
        today = weekday.cast(pl.Int8).is_in(days)
        if self.start_minute < self.end_minute:
            return today & (minute >= self.start_minute) & (minute < self.end_minute)
        yesterday = ((weekday + 6) % 7).cast(pl.Int8).is_in(days)
        return (today & (minute >= self.start_minute)) | (yesterday & (minute < self.end_minute))


def compile_during(during: ast.During) -> DuringSpec:
    days: set[int] = set()
    if during.days == "daily":
        days = set(range(7))
    else:
        for part in during.days.split(","):
            ends = part.split("-")
            idx = []
            for name in ends:
                if name not in DAY_NAMES:
                    raise BadScheduleError(
                        f"unknown day '{name}'; days are {', '.join(DAY_NAMES)} or daily",
                        line=during.span.line,
                        column=during.span.column,
                        hint=closest(name, (*DAY_NAMES, "daily")),
                    )
                idx.append(DAY_NAMES.index(name))
            if len(idx) == 1:
                days.add(idx[0])
            else:
                a, b = idx
                # mon-fri; a range may wrap the week end: fri-mon.
                span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
                days.update(span)
    start_text, end_text = during.clock.split("-")
    minutes = []
    for text in (start_text, end_text):
        hh, mm = (int(x) for x in text.split(":"))
        if hh > 24 or mm > 59 or (hh == 24 and mm != 0):
            raise BadScheduleError(
                f"'{text}' is not a time of day (00:00 to 24:00)",
                line=during.span.line,
                column=during.span.column,
            )
        minutes.append(hh * 60 + mm)
    if minutes[0] == minutes[1]:
        raise BadScheduleError(
            f"the window {during.clock} is empty: start and end are the same",
            line=during.span.line,
            column=during.span.column,
        )
    tz = during.tz or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadScheduleError(
            f"unknown time zone '{tz}'; use an IANA name like \"Europe/Berlin\"",
            line=during.span.line,
            column=during.span.column,
        ) from None
    return DuringSpec(frozenset(days), minutes[0], minutes[1] % 1440 or 1440, tz)


# ---------------------------------------------------------------- whole files


@dataclass(frozen=True)
class CompiledTemplate:
    template: Template
    source: ast.String


@dataclass(frozen=True)
class CompiledRule:
    """Everything the engine needs of a rule; it never sees rule text (STYLE.md §3)."""

    rule_id: str
    kind: str  # event | window | absent | new
    source_span: ast.Span
    ast: ast.RuleBlock
    when: pl.Expr
    key_fields: tuple[str, ...]
    key_nodes: tuple[AstField, ...]  # `ast` is a field of this class, so not ast.Field
    key_exprs: tuple[pl.Expr, ...]  # each field's value as text ("" when missing)
    window: WindowSpec | None
    absent_ms: int | None
    new_ms: int | None
    hold_ms: int
    resolve_after_ms: int | None
    severity: str | None
    team: str | None
    title: Template | None
    labels: tuple[tuple[str, Template], ...]
    notify: tuple[str, ...]
    escalate: tuple[tuple[int, str], ...]
    signature: str

    @property
    def horizon_ms(self) -> int:
        """How far back this rule looks: the span its state must cover."""
        if self.window is not None:
            return self.window.duration_ms * (2 if self.window.prev else 1)
        return self.new_ms or 0


@dataclass(frozen=True)
class CompiledRoute:
    route_id: str
    name: str | None
    when: pl.Expr
    team: str | None
    severity: str | None
    labels: tuple[tuple[str, Template], ...]
    notify: tuple[str, ...]
    escalate: tuple[tuple[int, str], ...]
    is_continue: bool


@dataclass(frozen=True)
class CompiledSilence:
    silence_id: str
    reason: str | None
    when: pl.Expr
    starts: datetime | None
    ends: datetime | None
    during: DuringSpec | None

    def active(self, at: pl.Expr) -> pl.Expr:
        out = pl.lit(True)
        if self.starts is not None:
            out = out & (at >= pl.lit(self.starts).dt.cast_time_unit("us"))
        if self.ends is not None:
            out = out & (at < pl.lit(self.ends).dt.cast_time_unit("us"))
        if self.during is not None:
            out = out & self.during.active(at)
        return out


@dataclass(frozen=True)
class CompiledInhibit:
    inhibit_id: str
    when: pl.Expr
    while_: pl.Expr
    on: tuple[str, ...]
    on_exprs: tuple[pl.Expr, ...]


@dataclass(frozen=True)
class CompiledCorrelate:
    correlate_id: str
    title: str | None
    when: pl.Expr
    by: tuple[str, ...]
    by_exprs: tuple[pl.Expr, ...]
    within_ms: int


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    routes: tuple[CompiledRoute, ...]
    silences: tuple[CompiledSilence, ...]
    inhibits: tuple[CompiledInhibit, ...]
    correlates: tuple[CompiledCorrelate, ...]
    event_labels: frozenset[str]  # labels the rules' `when`s and keys read
    alert_labels: frozenset[str]  # labels routes, silences, inhibits and correlates read
    source: ast.RulesFile

    @property
    def horizon_ms(self) -> int:
        return max((r.horizon_ms for r in self.rules), default=0)


def _key_text(t: Typed) -> pl.Expr:
    if t.kind is Kind.NUMBER:
        return render_value(t)
    if t.kind is Kind.TIME:
        return render_value(t)
    return as_text(t)


def _templates(
    items: tuple[ast.LabelSet, ...], errors: list[DslError]
) -> tuple[tuple[str, Template], ...]:
    out = []
    for item in items:
        try:
            out.append((item.key, parse_template(item.value)))
        except DslError as err:
            errors.append(err)
    return tuple(out)


def _signature(block: ast.RuleBlock) -> str:
    """Identity of what decides a rule's alerts; title, team or channels may change freely."""
    parts = (
        block.when,
        block.window,
        block.absent,
        block.new,
        block.by,
        block.hold,
        block.resolve_after,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _guard(errors: list[DslError], fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except DslErrors as many:
        errors.extend(many.errors)
    except DslError as err:
        errors.append(err)
    return None


def _guard_each(errors: list[DslError], fns: Iterable[Callable[[], _T]]) -> tuple[_T, ...] | None:
    """Every result, or None when any of them failed; all their errors are collected."""
    before = len(errors)
    results = [_guard(errors, fn) for fn in fns]
    done = tuple(r for r in results if r is not None)
    return done if len(errors) == before else None


def _resolve_key(scope: Scope, node: AstField) -> pl.Expr:
    return _key_text(scope.resolve(node))


def _compile_rule(
    block: ast.RuleBlock, scope: Scope, errors: list[DslError]
) -> CompiledRule | None:
    before = len(errors)
    when = _guard(errors, partial(compile_condition, block.when, scope))
    keys = _guard_each(errors, (partial(_resolve_key, scope, f) for f in block.by))
    window = _guard(errors, partial(compile_window, block.window, scope)) if block.window else None
    severity = None
    if block.severity is not None:
        name = block.severity.name
        if name not in SEVERITY_RANK:
            errors.append(
                UnknownSeverityError(
                    f"unknown severity '{name}'; severities are {', '.join(SEVERITIES)}",
                    line=block.severity.span.line,
                    column=block.severity.span.column,
                    hint=closest(name, SEVERITIES),
                )
            )
        severity = name
    title = _guard(errors, partial(parse_template, block.title)) if block.title else None
    labels = _templates(block.labels, errors)
    seen_fields: set[str] = set()
    for f in block.by:
        name = ast.field_name(f)
        if name in seen_fields:
            errors.append(_fail(f, f"'{name}' is already in 'by'", RuleSemanticError))
        seen_fields.add(name)
    if len(errors) > before or when is None or keys is None:
        return None
    kind = (
        "window" if block.window else "absent" if block.absent else "new" if block.new else "event"
    )
    key_nodes: tuple[ast.Field, ...] = block.by or (ast.Column("fingerprint"),)
    if not block.by:
        keys = (pl.col("fingerprint").fill_null(""),)
    return CompiledRule(
        rule_id=block.id.name,
        kind=kind,
        source_span=block.span,
        ast=block,
        when=when,
        key_fields=tuple(ast.field_name(f) for f in key_nodes),
        key_nodes=key_nodes,
        key_exprs=keys,
        window=window,
        absent_ms=block.absent.ms if block.absent else None,
        new_ms=block.new.ms if block.new else None,
        hold_ms=block.hold.ms if block.hold else 0,
        resolve_after_ms=block.resolve_after.ms if block.resolve_after else None,
        severity=severity,
        team=block.team.name if block.team else None,
        title=title,
        labels=labels,
        notify=tuple(n.name for n in block.notify),
        escalate=tuple((e.after.ms, e.target.name) for e in block.escalate),
        signature=_signature(block),
    )


def compile_rules(
    tree: ast.RulesFile,
    event_label: Callable[[str], pl.Expr] = label_expr,
    alert_label: Callable[[str], pl.Expr] = label_expr,
) -> CompiledRules:
    """Compile every block; raise DslErrors with every problem found, located in the file."""
    errors: list[DslError] = []
    events = event_scope(event_label)
    alerts = alert_scope(alert_label)
    rules: list[CompiledRule] = []
    routes: list[CompiledRoute] = []
    silences: list[CompiledSilence] = []
    inhibits: list[CompiledInhibit] = []
    correlates: list[CompiledCorrelate] = []
    seen: dict[str, ast.Block] = {}
    for block in tree.blocks:
        key = block.id.name
        if key in seen:
            errors.append(
                DuplicateIdError(
                    f"'{key}' is already the id of the {seen[key].kind} on line "
                    f"{seen[key].id.span.line}; ids must be unique in a file",
                    line=block.id.span.line,
                    column=block.id.span.column,
                )
            )
            continue
        seen[key] = block
        if isinstance(block, ast.RuleBlock):
            rule = _compile_rule(block, events, errors)
            if rule is not None:
                rules.append(rule)
        elif isinstance(block, ast.RouteBlock):
            before = len(errors)
            when = _guard(errors, partial(compile_condition, block.when, alerts))
            labels = _templates(block.labels, errors)
            if block.severity is not None and block.severity.name not in SEVERITY_RANK:
                errors.append(
                    UnknownSeverityError(
                        f"unknown severity '{block.severity.name}'; severities are "
                        f"{', '.join(SEVERITIES)}",
                        line=block.severity.span.line,
                        column=block.severity.span.column,
                        hint=closest(block.severity.name, SEVERITIES),
                    )
                )
            if len(errors) == before and when is not None:
                routes.append(
                    CompiledRoute(
                        route_id=key,
                        name=block.title.value if block.title else None,
                        when=when,
                        team=block.team.name if block.team else None,
                        severity=block.severity.name if block.severity else None,
                        labels=labels,
                        notify=tuple(n.name for n in block.notify),
                        escalate=tuple((e.after.ms, e.target.name) for e in block.escalate),
                        is_continue=block.is_continue,
                    )
                )
        elif isinstance(block, ast.SilenceBlock):
            before = len(errors)
            when = _guard(errors, partial(compile_condition, block.when, alerts))
            during = _guard(errors, partial(compile_during, block.during)) if block.during else None
            if block.starts and block.ends and block.ends.value <= block.starts.value:
                errors.append(
                    _fail(
                        block.ends,
                        "'until' must be after 'from': this silence would never be active",
                        BadScheduleError,
                    )
                )
            if len(errors) == before and when is not None:
                silences.append(
                    CompiledSilence(
                        silence_id=key,
                        reason=block.title.value if block.title else None,
                        when=when,
                        starts=block.starts.value if block.starts else None,
                        ends=block.ends.value if block.ends else None,
                        during=during,
                    )
                )
        elif isinstance(block, ast.InhibitBlock):
            before = len(errors)
            when = _guard(errors, partial(compile_condition, block.when, alerts))
            while_ = _guard(errors, partial(compile_condition, block.while_, alerts))
            on = _guard_each(errors, (partial(_resolve_key, alerts, f) for f in block.on))
            if len(errors) == before and when is not None and while_ is not None and on is not None:
                inhibits.append(
                    CompiledInhibit(
                        key, when, while_, tuple(ast.field_name(f) for f in block.on), on
                    )
                )
        else:
            before = len(errors)
            when = _guard(errors, partial(compile_condition, block.when, alerts))
            by = _guard_each(errors, (partial(_resolve_key, alerts, f) for f in block.by))
            if len(errors) == before and when is not None and by is not None:
                correlates.append(
                    CompiledCorrelate(
                        key,
                        block.title.value if block.title else None,
                        when,
                        tuple(ast.field_name(f) for f in block.by),
                        by,
                        block.within.ms,
                    )
                )
    if errors:
        for e in errors:
            e.path = tree.path
        raise DslErrors(errors)
    return CompiledRules(
        rules=tuple(rules),
        routes=tuple(routes),
        silences=tuple(silences),
        inhibits=tuple(inhibits),
        correlates=tuple(correlates),
        event_labels=frozenset(events.labels_used),
        alert_labels=frozenset(alerts.labels_used),
        source=tree,
    )
