"""The baseline: `when` conditions as plain per-event Python functions, as a hand-written engine
would run them (one call per rule per event), with the same DSL.md §2–3 semantics.

Each condition is translated once to Python source and compiled with `compile()`, so the
baseline pays for Python's per-event work, not for walking a syntax tree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from dsl import ast
from dsl.compiler import NUMERIC_TEXT
from dsl.fields import EVENT_COLUMNS, SEVERITY_RANK, Kind

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

_NUMERIC = re.compile(NUMERIC_TEXT)


def _t(v: Any) -> str:
    return "" if v is None else v


def _n(v: Any) -> float | None:
    """Read a value as a number: missing, non-numeric or NaN has none (DSL.md §2)."""
    if v is None:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) else v
    return float(v) if _NUMERIC.fullmatch(v) else None


def _arith(op: str, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if op == "/":
        return a / b if b != 0 else None
    out = a + b if op == "+" else a - b if op == "-" else a * b
    return None if math.isnan(out) else out


_HELPERS: dict[str, Any] = {
    "_t": _t,
    "_n": _n,
    "_arith": _arith,
    "_rank": SEVERITY_RANK.get,
    "_isnan": math.isnan,
}


class _Translator:
    """AST → one Python expression over `e` (the event) and `L` (its labels, a dict)."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self.names = 0

    def local(self) -> str:
        """A fresh local name for an assignment expression (`:=`)."""
        self.names += 1
        return f"_v{self.names}"

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def kind(self, node: ast.Expr) -> Kind:
        if isinstance(node, ast.String):
            return Kind.TEXT
        if isinstance(node, ast.Number | ast.Duration | ast.Neg | ast.Arith):
            return Kind.NUMBER
        if isinstance(node, ast.Column):
            return EVENT_COLUMNS[node.name]
        if isinstance(node, ast.Name | ast.Label):
            return Kind.LABEL
        if isinstance(node, ast.Call):
            return {"lower": Kind.TEXT, "upper": Kind.TEXT, "len": Kind.NUMBER}.get(
                node.name, Kind.NUMBER if node.name == "abs" else Kind.BOOL
            )
        return Kind.BOOL

    def raw(self, node: ast.Expr) -> str:
        if isinstance(node, ast.Column):
            return f"e[{node.name!r}]"
        key = node.key if isinstance(node, ast.Label) else node.name  # type: ignore[union-attr]
        return f"L.get({key!r})"

    def text(self, node: ast.Expr) -> str:
        if isinstance(node, ast.String):
            return repr(node.value)
        if isinstance(node, ast.Call):
            return self.expr(node)
        return f"_t({self.raw(node)})"

    def number(self, node: ast.Expr) -> str:
        if isinstance(node, ast.Number):
            return repr(float(node.value))
        if isinstance(node, ast.Duration):
            return repr(node.ms / 1000)
        if isinstance(node, ast.Neg):
            x = self.local()
            return f"(None if ({x} := {self.number(node.operand)}) is None else -{x})"
        if isinstance(node, ast.Arith):
            left, right = self.number(node.left), self.number(node.right)
            return f"_arith({node.op!r}, {left}, {right})"
        if isinstance(node, ast.Call):
            return f"_n({self.expr(node)})"
        return f"_n({self.raw(node)})"

    def expr(self, node: ast.Expr) -> str:
        if isinstance(node, ast.Bool):
            return repr(node.value)
        if isinstance(node, ast.Not):
            return f"(not {self.expr(node.operand)})"
        if isinstance(node, ast.And):
            return f"({self.expr(node.left)} and {self.expr(node.right)})"
        if isinstance(node, ast.Or):
            return f"({self.expr(node.left)} or {self.expr(node.right)})"
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.InList):
            values = [i.value for i in node.items.items if isinstance(i, ast.String | ast.Number)]
            if node.items.items and isinstance(node.items.items[0], ast.Number):
                found = self.constant(frozenset(float(v) for v in values))
                op, x = "not in" if node.negated else "in", self.local()
                return f"(({x} := {self.number(node.operand)}) is not None and {x} {op} {found})"
            found = self.constant(frozenset(values))
            return f"({self.text(node.operand)} {'not in' if node.negated else 'in'} {found})"
        if isinstance(node, ast.Regex):
            assert isinstance(node.pattern, ast.String)
            pattern = self.constant(re.compile(node.pattern.value.replace("$", r"\Z")))
            test = f"{pattern}.search({self.text(node.operand)}) is None"
            return f"({test})" if node.negated else f"(not {test})"
        if isinstance(node, ast.Call):
            return self.call(node)
        raise TypeError(f"the baseline does not translate {type(node).__name__}")

    def call(self, node: ast.Call) -> str:
        args = node.args
        if node.name in ("lower", "upper"):
            return f"{self.text(args[0])}.{node.name}()"
        if node.name == "len":
            return f"float(len({self.text(args[0])}))"
        if node.name == "abs":
            x = self.local()
            return f"(None if ({x} := {self.number(args[0])}) is None else abs({x}))"
        if node.name == "exists":
            x = self.local()
            return f"(({x} := {self.raw(args[0])}) is not None and {x} != '')"
        method = {"contains": "__contains__", "startswith": "startswith", "endswith": "endswith"}
        return f"{self.text(args[0])}.{method[node.name]}({self.text(args[1])})"

    def compare(self, node: ast.Compare) -> str:
        kinds = {self.kind(node.left), self.kind(node.right)}
        op = node.op
        if Kind.BOOL in kinds:
            return f"({self.expr(node.left)} {op} {self.expr(node.right)})"
        sides = []
        for n in (node.left, node.right):
            if Kind.SEVERITY in kinds and isinstance(n, ast.String):
                sides.append((repr(SEVERITY_RANK[n.value]), False))
            elif Kind.SEVERITY in kinds:
                sides.append(
                    (f"_rank({self.raw(n) if isinstance(n, ast.Column) else self.text(n)})", True)
                )
            elif Kind.NUMBER in kinds and isinstance(n, ast.Number | ast.Duration):
                sides.append((self.number(n), False))
            elif Kind.NUMBER in kinds:
                sides.append((self.number(n), True))
            else:
                return f"({self.text(node.left)} {op} {self.text(node.right)})"
        # DSL.md §3: no number (or no rank) on a side makes the comparison false
        tests, values = [], []
        for code, maybe_none in sides:
            if maybe_none:
                name = self.local()
                tests.append(f"({name} := {code}) is not None")
                values.append(name)
            else:
                values.append(code)
        return f"({' and '.join([*tests, f'{values[0]} {op} {values[1]}'])})"


def predicates(conditions: list[ast.Expr]) -> list[Predicate]:
    """One Python function per condition: `fn(event) -> bool`."""
    translator = _Translator()
    bodies = [translator.expr(c) for c in conditions]
    source = "\n".join(
        f"def rule_{i}(e):\n    L = e['labels'] or {{}}\n    return {body}\n"
        for i, body in enumerate(bodies)
    )
    namespace: dict[str, Any] = {**_HELPERS, **translator.constants}
    exec(compile(source, "<baseline rules>", "exec"), namespace)
    return [namespace[f"rule_{i}"] for i in range(len(bodies))]
