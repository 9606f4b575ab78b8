"""The canonical text of a rules file: `klaxon fmt`. `parse(print_rules(t)) == t` always holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dsl import ast

LINE_WIDTH = 100
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = {"and", "or", "not", "in", "true", "false", "end"}
_UNITS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))

# Binding strength, loosest first, as in DSL.md §3.
_OR, _AND, _NOT, _CMP, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)


def quote(text: str) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def _word(text: str) -> str:
    """A name printed bare when the grammar reads it back as a name, else quoted."""
    return text if _IDENT.match(text) and text not in _RESERVED else quote(text)


def print_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def print_duration(ms: int) -> str:
    if ms == 0:
        return "0s"
    out = []
    for unit, size in _UNITS:
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


def _level(node: Any) -> int:
    if isinstance(node, ast.Or):
        return _OR
    if isinstance(node, ast.And):
        return _AND
    if isinstance(node, ast.Not):
        return _NOT
    if isinstance(node, ast.Compare | ast.InList | ast.Regex):
        return _CMP
    if isinstance(node, ast.Arith):
        return _SUM if node.op in "+-" else _PRODUCT
    if isinstance(node, ast.Neg):
        return _UNARY
    return _ATOM


def _at(node: Any, level: int) -> str:
    text = print_expr(node)
    return f"({text})" if _level(node) < level else text


def print_field(node: ast.Field) -> str:
    if isinstance(node, ast.Label):
        key = node.key
        return (
            f"labels.{key}"
            if _IDENT.match(key) and key not in _RESERVED
            else f"labels[{quote(key)}]"
        )
    return node.name


def print_expr(node: Any) -> str:
    """One expression on one line, with only the parentheses the precedence needs."""
    if isinstance(node, ast.String):
        return quote(node.value)
    if isinstance(node, ast.Number):
        return print_number(node.value)
    if isinstance(node, ast.Bool):
        return "true" if node.value else "false"
    if isinstance(node, ast.Duration):
        return print_duration(node.ms)
    if isinstance(node, ast.ListLit):
        return "[" + ", ".join(print_expr(i) for i in node.items) + "]"
    if isinstance(node, ast.Column | ast.Name | ast.Label):
        return print_field(node)
    if isinstance(node, ast.Call):
        return f"{node.name}(" + ", ".join(print_expr(a) for a in node.args) + ")"
    if isinstance(node, ast.Neg):
        return "-" + _at(node.operand, _UNARY)
    if isinstance(node, ast.Not):
        return "not " + _at(node.operand, _NOT)
    if isinstance(node, ast.Or):
        return f"{_at(node.left, _OR)} or {_at(node.right, _AND)}"
    if isinstance(node, ast.And):
        return f"{_at(node.left, _AND)} and {_at(node.right, _NOT)}"
    if isinstance(node, ast.Compare):
        return f"{_at(node.left, _SUM)} {node.op} {_at(node.right, _SUM)}"
    if isinstance(node, ast.InList):
        op = "not in" if node.negated else "in"
        return f"{_at(node.operand, _SUM)} {op} {print_expr(node.items)}"
    if isinstance(node, ast.Regex):
        op = "!~" if node.negated else "=~"
        return f"{_at(node.operand, _SUM)} {op} {_at(node.pattern, _SUM)}"
    if isinstance(node, ast.Arith):
        own = _SUM if node.op in "+-" else _PRODUCT
        return f"{_at(node.left, own)} {node.op} {_at(node.right, own + 1)}"
    raise TypeError(f"cannot print {type(node).__name__}")


def _spine(node: ast.Expr, kind: type[ast.And] | type[ast.Or]) -> list[ast.Expr]:
    """a and b and c (left-nested) → [a, b, c]."""
    items: list[ast.Expr] = []
    while isinstance(node, kind):
        items.append(node.right)
        node = node.left
    items.append(node)
    return items[::-1]


def _condition_lines(keyword: str, node: ast.Expr) -> list[str]:
    one = f"  {keyword} {print_expr(node)}"
    if len(one) <= LINE_WIDTH or not isinstance(node, ast.And | ast.Or):
        return [one]
    kind, word, level = (
        (ast.And, "and", _NOT) if isinstance(node, ast.And) else (ast.Or, "or", _AND)
    )
    first, *rest = _spine(node, kind)
    lines = [f"  {keyword} {_at(first, level)}"]
    lines += [f"   {word} {_at(item, level)}" for item in rest]
    return lines


def _instant(value: datetime) -> str:
    value = value.astimezone(UTC)
    # strftime's %Y does not pad years before 1000, and a timestamp takes four digits.
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _label_sets(items: tuple[ast.LabelSet, ...]) -> str:
    return ", ".join(f"{_word(i.key)} = {quote(i.value.value)}" for i in items)


def _clauses(block: ast.Block) -> list[tuple[str, list[str]]]:
    """(slot, lines) for each clause the block has, in canonical order."""
    out: list[tuple[str, list[str]]] = [("when", _condition_lines("when", block.when))]

    def add(slot: str, text: Any) -> None:
        if text:
            out.append((slot, [f"  {text}"]))

    def escalations(items: tuple[ast.Escalation, ...]) -> None:
        for i, esc in enumerate(items, 1):
            add(
                f"escalate#{i}",
                f"escalate after {print_duration(esc.after.ms)} to {esc.target.name}",
            )

    if isinstance(block, ast.RuleBlock):
        w = block.window
        if w is not None:
            add(
                "window",
                f"{print_expr(w.agg)} {w.op} {_at(w.threshold, _SUM)} within "
                f"{print_duration(w.duration.ms)}",
            )
        add("absent", block.absent and f"absent for {print_duration(block.absent.ms)}")
        add("new", block.new and f"new within {print_duration(block.new.ms)}")
        add("by", block.by and "by " + ", ".join(print_field(f) for f in block.by))
        add("for", block.hold and f"for {print_duration(block.hold.ms)}")
        add(
            "resolve",
            block.resolve_after and f"resolve after {print_duration(block.resolve_after.ms)}",
        )
        add("severity", block.severity and f"severity {block.severity.name}")
        add("team", block.team and f"team {_word(block.team.name)}")
        add("labels", block.labels and f"labels {_label_sets(block.labels)}")
        add("notify", block.notify and "notify " + ", ".join(n.name for n in block.notify))
        escalations(block.escalate)
    elif isinstance(block, ast.RouteBlock):
        add("team", block.team and f"team {_word(block.team.name)}")
        add("severity", block.severity and f"severity {block.severity.name}")
        add("labels", block.labels and f"labels {_label_sets(block.labels)}")
        add("notify", block.notify and "notify " + ", ".join(n.name for n in block.notify))
        escalations(block.escalate)
        add("continue", "continue" if block.is_continue else None)
    elif isinstance(block, ast.SilenceBlock):
        add("from", block.starts and f"from {_instant(block.starts.value)}")
        add("until", block.ends and f"until {_instant(block.ends.value)}")
        d = block.during
        if d is not None:
            zone = f" in {quote(d.tz)}" if d.tz is not None else ""
            add("during", f"during {d.days} {d.clock}{zone}")
    elif isinstance(block, ast.InhibitBlock):
        out += [
            (slot, lines) for slot, lines in [("while", _condition_lines("while", block.while_))]
        ]
        add("on", "on " + ", ".join(print_field(f) for f in block.on))
    else:
        add("by", "by " + ", ".join(print_field(f) for f in block.by))
        add("within", f"within {print_duration(block.within.ms)}")
    return out


def _with_notes(
    lines: list[str], notes: dict[str, tuple[str, ...]], slot: str, indent: str
) -> list[str]:
    out = [indent + n for n in notes.get(slot, ())]
    trailing = notes.get(slot + ">")
    if trailing:
        lines = [*lines[:-1], lines[-1] + "  " + "  ".join(trailing)]
    return out + lines


def print_block(block: ast.Block) -> str:
    head = f"{block.kind} {block.id.name}"
    if block.title is not None:
        head += f" {quote(block.title.value)}"
    lines = _with_notes([head], block.notes, "", "")
    for slot, clause_lines in _clauses(block):
        lines += _with_notes(clause_lines, block.notes, slot, "  ")
    lines += _with_notes(["end"], block.notes, "end", "  ")
    return "\n".join(lines)


def print_rules(tree: ast.RulesFile) -> str:
    """The whole file in canonical layout; comments stay with what they were written before."""
    parts = [print_block(b) for b in tree.blocks]
    if tree.trailing_notes:
        parts.append("\n".join(tree.trailing_notes))
    return "\n\n".join(parts) + "\n" if parts else ""
