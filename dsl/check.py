"""Semantic checks and the entry points that turn rules text into compiled rules or errors."""

from __future__ import annotations

from pathlib import Path

from dsl.compiler import CompiledRules, compile_rules
from dsl.errors import DslError, DslErrors
from dsl.parser import parse_collect


def check_rules(text: str, path: str = "<rules>") -> list[DslError]:
    """Every error in the file, in file order, each located (line, column, source line).

    Syntax errors come from the parser (one per broken block); the blocks that parse are then
    compiled, which finds unknown severities and functions, duplicate ids, conflicting clauses,
    bad regexes, broken templates, bad `during` windows and type mismatches.
    """
    return _compile_collect(text, path)[1]


def load_rules(text: str, path: str = "<rules>") -> CompiledRules:
    """Parse and compile a rules file; raise DslErrors with every problem if it has any."""
    compiled, errors = _compile_collect(text, path)
    if errors or compiled is None:
        raise DslErrors(errors)
    return compiled


def _compile_collect(text: str, path: str) -> tuple[CompiledRules | None, list[DslError]]:
    """Parse and compile once (a file of 1,000 rules takes most of a second to parse)."""
    tree, errors = parse_collect(text, path)
    compiled = None
    try:
        compiled = compile_rules(tree)
    except DslErrors as many:
        errors.extend(many.errors)
    for err in errors:
        err.located(path, text)
    errors.sort(key=lambda e: (e.line, e.column))
    return compiled, errors


def load_rules_file(path: str | Path) -> CompiledRules:
    p = Path(path)
    return load_rules(p.read_text(encoding="utf-8"), str(p))
