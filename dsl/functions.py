"""The built-in functions and window aggregates of the rule language, one row each.

A row says how many arguments a function takes, how each is read, what it returns, how it
builds a Polars expression and how the slow reference evaluator in the tests computes it.
Adding a function is one row here, one line in DSL.md and one golden case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from dsl.fields import Kind

# How an argument is read: as text (missing → ""), as a number (missing or non-numeric → no
# value), or as the field itself (for `exists`, which must see whether a value is there).
TEXT, NUMBER, FIELD = "text", "number", "field"


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[str, ...]
    result: Kind
    build: Callable[..., pl.Expr]
    reference: Callable[..., Any]
    doc: str


def _exists(x: pl.Expr) -> pl.Expr:
    return x.is_not_null() & (x.cast(pl.String) != "")


def _ref_exists(x: Any) -> bool:
    return x is not None and x != ""


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            "lower",
            (TEXT,),
            Kind.TEXT,
            lambda x: x.str.to_lowercase(),
            lambda x: x.lower(),
            "lower(x): x in lower case",
        ),
        Function(
            "upper",
            (TEXT,),
            Kind.TEXT,
            lambda x: x.str.to_uppercase(),
            lambda x: x.upper(),
            "upper(x): x in upper case",
        ),
        Function(
            "len",
            (TEXT,),
            Kind.NUMBER,
            lambda x: x.str.len_chars().cast(pl.Float64),
            lambda x: float(len(x)),
            "len(x): the number of characters in x (0 when missing)",
        ),
        Function(
            "abs",
            (NUMBER,),
            Kind.NUMBER,
            lambda x: x.abs(),
            lambda x: None if x is None else abs(x),
            "abs(x): the absolute value of a number",
        ),
        Function(
            "contains",
            (TEXT, TEXT),
            Kind.BOOL,
            lambda x, s: x.str.contains(s, literal=True),
            lambda x, s: s in x,
            'contains(x, "s"): x contains s',
        ),
        Function(
            "startswith",
            (TEXT, TEXT),
            Kind.BOOL,
            lambda x, s: x.str.starts_with(s),
            lambda x, s: x.startswith(s),
            'startswith(x, "s"): x starts with s',
        ),
        Function(
            "endswith",
            (TEXT, TEXT),
            Kind.BOOL,
            lambda x, s: x.str.ends_with(s),
            lambda x, s: x.endswith(s),
            'endswith(x, "s"): x ends with s',
        ),
        Function(
            "exists",
            (FIELD,),
            Kind.BOOL,
            _exists,
            _ref_exists,
            "exists(x): the label or column is present and not empty",
        ),
    )
}


@dataclass(frozen=True)
class Aggregate:
    """A window aggregate: `count()`, `p95(latency_ms)`."""

    name: str
    takes_field: bool
    reads: str  # how the field is read: NUMBER, or TEXT for count_distinct
    quantile: float | None
    doc: str


def _percentile(name: str, q: float) -> Aggregate:
    return Aggregate(
        name, True, NUMBER, q, f"{name}(F): {round(q * 100)}th percentile of F (linear)"
    )


AGGREGATES: dict[str, Aggregate] = {
    a.name: a
    for a in (
        Aggregate("count", False, NUMBER, None, "count(): matching events in the window"),
        Aggregate(
            "count_distinct", True, TEXT, None, "count_distinct(F): distinct non-empty values of F"
        ),
        Aggregate("sum", True, NUMBER, None, "sum(F): sum of F (0 for an empty window)"),
        Aggregate("avg", True, NUMBER, None, "avg(F): mean of F"),
        Aggregate("min", True, NUMBER, None, "min(F): smallest F"),
        Aggregate("max", True, NUMBER, None, "max(F): largest F"),
        _percentile("p50", 0.50),
        _percentile("p90", 0.90),
        _percentile("p95", 0.95),
        _percentile("p99", 0.99),
        Aggregate(
            "rate", False, NUMBER, None, "rate(): matching events per second over the window"
        ),
    )
}

# `prev(AGG)` is the aggregate over the window just before; it is only valid in a window's threshold.
PREV = "prev"
