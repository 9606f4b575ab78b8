"""Small hand-built event frames with the canonical columns, and a helper to evaluate `when`s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from dsl import ast
from dsl.compiler import Scope, compile_condition, event_scope
from dsl.fields import EVENT_KINDS, SEVERITIES, STATUSES
from dsl.parser import parse

# The canonical event columns as DESIGN.md types them (engine/schema.py EVENT_SCHEMA owns the
# real thing; tests/dsl keeps its own copy so the language is tested without the engine).
EVENT_TYPES = pl.Schema(
    {
        "ts": pl.Datetime("us", "UTC"),
        "received_at": pl.Datetime("us", "UTC"),
        "kind": pl.Enum(list(EVENT_KINDS)),
        "source": pl.String,
        "source_id": pl.String,
        "fingerprint": pl.String,
        "title": pl.String,
        "description": pl.String,
        "severity": pl.Enum(list(SEVERITIES)),
        "status": pl.Enum(list(STATUSES)),
        "service": pl.String,
        "environment": pl.String,
        "host": pl.String,
        "value": pl.Float64,
        "labels": pl.Map(pl.String, pl.String),
    }
)


def events(*rows: Mapping[str, Any]) -> pl.DataFrame:
    """A frame of every canonical column; a column a row leaves out is null in that row.

    `events({"service": "api", "labels": {"env": "prod"}}, {})` is two rows: service
    ["api", null], labels [{"env": "prod"}, null], every other column null.
    """
    data = {name: [row.get(name) for row in rows] for name in EVENT_TYPES}
    return pl.DataFrame(data, schema=EVENT_TYPES)


def labels(*maps: Mapping[str, str] | None) -> pl.DataFrame:
    """Events that differ only in their labels."""
    return events(*({"labels": m} for m in maps))


def when_of(text: str) -> ast.Expr:
    """The expression of `rule r when TEXT end`."""
    block = parse(f"rule r\n  when {text}\nend\n").blocks[0]
    assert isinstance(block, ast.RuleBlock)
    return block.when


def evaluate(text: str, frame: pl.DataFrame, scope: Scope | None = None) -> list[bool]:
    """Compile a `when` expression and evaluate it over a frame in one lazy query.

    `with_columns`, not `select`: a constant condition (`when true`) is a scalar literal and
    only broadcasts to one value per row next to the frame's columns.
    """
    expr = compile_condition(when_of(text), scope or event_scope())
    out = frame.lazy().with_columns(expr.alias("__matched")).collect()["__matched"]
    assert out.dtype == pl.Boolean
    return out.to_list()


def truth(text: str, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    return evaluate(text, events(*rows))
