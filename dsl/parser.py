"""Rules-file text → syntax tree, with every syntax error located and worded for a person."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.tree import Meta

from dsl import ast
from dsl.errors import (
    ConflictingClauseError,
    DslError,
    DslErrors,
    RuleSemanticError,
    RuleSyntaxError,
)
from dsl.fields import EVENT_COLUMNS, closest

_comments = threading.local()


def _collect_comment(token: Token) -> None:
    sink = getattr(_comments, "sink", None)
    if sink is not None:
        sink.append(token)


_PARSER = Lark(
    (Path(__file__).parent / "grammar.lark").read_text(),
    parser="lalr",
    lexer="contextual",
    propagate_positions=True,
    maybe_placeholders=True,
    lexer_callbacks={"COMMENT": _collect_comment},
)

BLOCK_KINDS = ("rule", "route", "silence", "inhibit", "correlate")
# A block word then an id; `rule in [...]` on a wrapped `when` line is a name, not a block.
_BLOCK_START = re.compile(
    r"^[ \t]*(?:rule|route|silence|inhibit|correlate)[ \t]+"
    r"(?!(?:and|or|not|in|true|false|end)(?![A-Za-z0-9_]))[A-Za-z_]",
    re.M,
)
_ID = re.compile(r"[a-z_][a-z0-9_]*\Z")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}

# Which clause keywords each block kind takes (DSL.md §4–5).
CLAUSES: dict[str, tuple[str, ...]] = {
    "rule": (
        "when",
        "window",
        "absent",
        "new",
        "by",
        "for",
        "resolve",
        "severity",
        "team",
        "labels",
        "notify",
        "escalate",
    ),
    "route": ("when", "team", "severity", "labels", "notify", "escalate", "continue"),
    "silence": ("when", "from", "until", "during"),
    "inhibit": ("when", "while", "on"),
    "correlate": ("when", "by", "within"),
}
_CLAUSE_HOME = {
    "window": "rule",
    "absent": "rule",
    "new": "rule",
    "for": "rule",
    "resolve": "rule",
    "continue": "route",
    "while": "inhibit",
    "on": "inhibit",
    "from": "silence",
    "until": "silence",
    "during": "silence",
    "within": "correlate",
}
REPEATABLE = {"escalate"}
CONDITIONS = ("window", "absent", "new")  # a rule has at most one

# How terminals read in a message.
_DISPLAY = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "DURATION": "a duration like 5m",
    "TIMESTAMP": "a timestamp like 2026-01-01T00:00:00Z",
    "DAYS": "days like mon-fri",
    "CLOCK_RANGE": "a time range like 22:00-06:00",
    "COMPOP": "a comparison (==, !=, <, <=, >, >=)",
    "MATCHOP": "=~ or !~",
    "BLOCK_KIND": "a block (rule, route, silence, inhibit, correlate)",
    "$END": "the end of the file",
}
_VALUE_STARTS = {"NAME", "STRING", "NUMBER", "DURATION", "LSQB", "LPAR", "MINUS"}


@dataclass
class Clause:
    keyword: str
    args: tuple[Any, ...]
    span: ast.Span
    end_line: int


@dataclass
class _RawBlock:
    kind: str
    id: ast.Ident
    title: ast.String | None
    clauses: list[Clause]
    span: ast.Span
    end_span: ast.Span
    slots: dict[str, tuple[int, int]] = field(default_factory=dict)


def _span_of(item: Token | Meta) -> ast.Span:
    return ast.Span(item.line or 0, item.column or 0, item.end_line or 0, item.end_column or 0)


def unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            # Unknown escapes keep their backslash, so regexes like "\d+" read as written.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_duration_text(text: str) -> int:
    """`1h30m` → milliseconds."""
    return sum(int(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(text))


def parse_instant_text(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no time zone")
    return value.astimezone(UTC)


def _str(tok: Token) -> ast.String:
    return ast.String(unescape(str(tok)[1:-1]), _span_of(tok))


# About 30,000 years: longer is a typo, and it would not fit the engine's Int64 milliseconds.
MAX_DURATION_MS = 10**15


def _dur(tok: Token) -> ast.Duration:
    text = str(tok)
    if len(text) > 40 or parse_duration_text(text) > MAX_DURATION_MS:
        raise _SemanticProblem(f"the duration {text[:40]} is too long", _span_of(tok))
    return ast.Duration(parse_duration_text(text), _span_of(tok))


def _opt_str(tok: Token | None) -> ast.String | None:
    return None if tok is None else _str(tok)


class _SemanticProblem(Exception):
    """Raised inside the transformer; turned into a located RuleSemanticError."""

    def __init__(self, message: str, span: ast.Span, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """One method per grammar alias, building the nodes of dsl.ast."""

    # ---- expressions
    def number(self, meta: Meta, c: list[Any]) -> ast.Number:
        text = str(c[0])
        # Past about 1.8e308 a number is no float: float(10**400) overflows, and Python
        # refuses int() of more than 4300 digits.
        try:
            value: int | float = float(text) if "." in text else int(text)
            if math.isinf(float(value)):
                raise OverflowError(text)
        except (ValueError, OverflowError):
            raise _SemanticProblem("this number is too large", _span_of(c[0])) from None
        return ast.Number(value, _span_of(c[0]))

    def string(self, meta: Meta, c: list[Any]) -> ast.String:
        return _str(c[0])

    def duration(self, meta: Meta, c: list[Any]) -> ast.Duration:
        return _dur(c[0])

    def true_(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(True, _span_of(meta))

    def false_(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(False, _span_of(meta))

    def list_(self, meta: Meta, c: list[Any]) -> ast.ListLit:
        return ast.ListLit(tuple(x for x in c if x is not None), _span_of(meta))

    def call(self, meta: Meta, c: list[Any]) -> ast.Call:
        name, *args = c
        return ast.Call(str(name), tuple(a for a in args if a is not None), _span_of(meta))

    def name(self, meta: Meta, c: list[Any]) -> ast.Column | ast.Name:
        text = str(c[0])
        if text in EVENT_COLUMNS:
            return ast.Column(text, _span_of(meta))
        return ast.Name(text, _span_of(meta))

    def dotted(self, meta: Meta, c: list[Any]) -> ast.Label:
        base, key = str(c[0]), str(c[1])
        if base != "labels":
            raise _SemanticProblem(
                f"'{base}.{key}' names nothing; only labels have parts: labels.{key}",
                _span_of(meta),
            )
        return ast.Label(key, _span_of(meta))

    def index(self, meta: Meta, c: list[Any]) -> ast.Label:
        base, key = str(c[0]), _str(c[1])
        if base != "labels":
            raise _SemanticProblem(
                f"'{base}[...]' names nothing; only labels can be indexed: labels[{key.value!r}]",
                _span_of(meta),
            )
        return ast.Label(key.value, _span_of(meta))

    def neg(self, meta: Meta, c: list[Any]) -> ast.Neg:
        return ast.Neg(c[0], _span_of(meta))

    def not_(self, meta: Meta, c: list[Any]) -> ast.Not:
        return ast.Not(c[0], _span_of(meta))

    def _arith(self, op: str, meta: Meta, c: list[Any]) -> ast.Arith:
        return ast.Arith(op, c[0], c[1], _span_of(meta))

    def add(self, meta: Meta, c: list[Any]) -> ast.Arith:
        return self._arith("+", meta, c)

    def sub(self, meta: Meta, c: list[Any]) -> ast.Arith:
        return self._arith("-", meta, c)

    def mul(self, meta: Meta, c: list[Any]) -> ast.Arith:
        return self._arith("*", meta, c)

    def div(self, meta: Meta, c: list[Any]) -> ast.Arith:
        return self._arith("/", meta, c)

    def compare(self, meta: Meta, c: list[Any]) -> ast.Compare:
        return ast.Compare(str(c[1]), c[0], c[2], _span_of(meta))

    def in_(self, meta: Meta, c: list[Any]) -> ast.InList:
        return ast.InList(c[0], c[1], False, _span_of(meta))

    def not_in(self, meta: Meta, c: list[Any]) -> ast.InList:
        return ast.InList(c[0], c[1], True, _span_of(meta))

    def regex(self, meta: Meta, c: list[Any]) -> ast.Regex:
        return ast.Regex(c[0], c[2], str(c[1]) == "!~", _span_of(meta))

    def and_(self, meta: Meta, c: list[Any]) -> ast.And:
        return ast.And(c[0], c[1], _span_of(meta))

    def or_(self, meta: Meta, c: list[Any]) -> ast.Or:
        return ast.Or(c[0], c[1], _span_of(meta))

    # ---- clause values
    def ident(self, meta: Meta, c: list[Any]) -> ast.Ident:
        v = c[0]
        name = _str(v).value if v.type == "STRING" else str(v)
        return ast.Ident(name, _span_of(meta))

    def target(self, meta: Meta, c: list[Any]) -> ast.Ident:
        return ast.Ident(str(c[0]), _span_of(meta))

    def scoped_target(self, meta: Meta, c: list[Any]) -> ast.Ident:
        return ast.Ident(f"{c[0]}:{c[1]}", _span_of(meta))

    def label_pair(self, meta: Meta, c: list[Any]) -> ast.LabelSet:
        key = _str(c[0]).value if c[0].type == "STRING" else str(c[0])
        return ast.LabelSet(key, _str(c[1]), _span_of(meta))

    def instant(self, meta: Meta, c: list[Any]) -> ast.Instant:
        v = c[0]
        text = _str(v).value if v.type == "STRING" else str(v)
        try:
            return ast.Instant(parse_instant_text(text), _span_of(meta))
        except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 in UTC
            raise _SemanticProblem(
                f"'{text}' is not an RFC 3339 timestamp like 2026-11-24T22:00:00Z",
                _span_of(meta),
            ) from None

    # ---- clauses: (keyword, args)
    def _clause(self, meta: Meta, c: list[Any], keyword: str, args: tuple[Any, ...]) -> Clause:
        head = c[0]
        span = _span_of(head) if isinstance(head, Token) else _span_of(meta)
        return Clause(keyword, args, span, meta.end_line or span.line)

    def when_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "when", (c[1],))

    def window_clause(self, meta: Meta, c: list[Any]) -> Clause:
        agg, op, threshold, _within, dur = c
        window = ast.Window(agg, str(op), threshold, _dur(dur), _span_of(meta))
        return Clause("window", (window,), agg.span, meta.end_line or agg.span.line)

    def absent_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "absent", (_dur(c[1]),))

    def new_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "new", (_dur(c[1]),))

    def by_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "by", tuple(c[1:]))

    def for_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "for", (_dur(c[1]),))

    def resolve_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "resolve", (_dur(c[1]),))

    def severity_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "severity", (ast.Ident(str(c[1]), _span_of(c[1])),))

    def team_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "team", (c[1],))

    def labels_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "labels", tuple(c[1:]))

    def notify_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "notify", tuple(c[1:]))

    def escalate_clause(self, meta: Meta, c: list[Any]) -> Clause:
        esc = ast.Escalation(_dur(c[1]), c[2], _span_of(meta))
        return self._clause(meta, c, "escalate", (esc,))

    def continue_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "continue", ())

    def while_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "while", (c[1],))

    def on_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "on", tuple(c[1:]))

    def from_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "from", (c[1],))

    def until_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "until", (c[1],))

    def during_clause(self, meta: Meta, c: list[Any]) -> Clause:
        tz = _str(c[3]).value if c[3] is not None else None
        during = ast.During(str(c[1]), str(c[2]), tz, _span_of(meta))
        return self._clause(meta, c, "during", (during,))

    def within_clause(self, meta: Meta, c: list[Any]) -> Clause:
        return self._clause(meta, c, "within", (_dur(c[1]),))

    # ---- blocks
    def block(self, meta: Meta, c: list[Any]) -> _RawBlock:
        kind_tok, id_tok, title, *clauses, end_tok = c
        return _RawBlock(
            kind=str(kind_tok),
            id=ast.Ident(str(id_tok), _span_of(id_tok)),
            title=_opt_str(title),
            clauses=clauses,
            span=_span_of(meta),
            end_span=_span_of(end_tok),
        )

    def start(self, meta: Meta, c: list[Any]) -> list[_RawBlock]:
        return list(c)


_TRANSFORMER = _ToAst()


# ---------------------------------------------------------------- raw blocks → typed blocks


def _build_block(raw: _RawBlock, errors: list[DslError]) -> ast.Block | None:
    kind = raw.kind
    seen: dict[str, Clause] = {}
    allowed = CLAUSES[kind]
    ok = True
    if not _ID.match(raw.id.name):
        errors.append(
            RuleSemanticError(
                f"'{raw.id.name}' is not a valid id: use lower-case letters, digits and _",
                line=raw.id.span.line,
                column=raw.id.span.column,
            )
        )
    for clause in raw.clauses:
        kw = clause.keyword
        shown = "a window condition" if kw == "window" else f"'{kw}'"
        if kw not in allowed:
            home = _CLAUSE_HOME.get(kw)
            where = f"; it belongs in a {home} block" if home else ""
            errors.append(
                RuleSemanticError(
                    f"{shown} does not belong in a {kind} block{where}",
                    line=clause.span.line,
                    column=clause.span.column,
                )
            )
            continue
        if kw in seen and kw not in REPEATABLE:
            first = seen[kw]
            errors.append(
                ConflictingClauseError(
                    f"{kind} '{raw.id.name}' already has {shown} (line {first.span.line})",
                    line=clause.span.line,
                    column=clause.span.column,
                )
            )
            continue
        if kw in CONDITIONS:
            other = next((seen[k] for k in CONDITIONS if k in seen), None)
            if other is not None:
                errors.append(
                    ConflictingClauseError(
                        f"a rule takes one of a window condition, 'absent' and 'new': "
                        f"this {shown} conflicts with the {_clause_label(other)} on line "
                        f"{other.span.line}",
                        line=clause.span.line,
                        column=clause.span.column,
                    )
                )
                continue
        seen.setdefault(kw, clause)
    required = {"inhibit": ("when", "while", "on"), "correlate": ("when", "by", "within")}
    for kw in required.get(kind, ("when",)):
        if kw not in seen:
            errors.append(
                RuleSemanticError(
                    f"{kind} '{raw.id.name}' is missing its '{kw}' clause",
                    line=raw.id.span.line,
                    column=raw.id.span.column,
                )
            )
            ok = False
    if not ok:
        return None

    def arg(kw: str, default: Any = None) -> Any:
        clause = seen.get(kw)
        return clause.args[0] if clause is not None else default

    def args(kw: str) -> tuple[Any, ...]:
        clause = seen.get(kw)
        return clause.args if clause is not None else ()

    escalations = tuple(
        c.args[0] for c in raw.clauses if c.keyword == "escalate" and "escalate" in allowed
    )
    common = {"id": raw.id, "title": raw.title, "when": arg("when"), "span": raw.span}
    if kind == "rule":
        return ast.RuleBlock(
            **common,
            window=arg("window"),
            absent=arg("absent"),
            new=arg("new"),
            by=args("by"),
            hold=arg("for"),
            resolve_after=arg("resolve"),
            severity=arg("severity"),
            team=arg("team"),
            labels=args("labels"),
            notify=args("notify"),
            escalate=escalations,
        )
    if kind == "route":
        return ast.RouteBlock(
            **common,
            team=arg("team"),
            severity=arg("severity"),
            labels=args("labels"),
            notify=args("notify"),
            escalate=escalations,
            is_continue="continue" in seen,
        )
    if kind == "silence":
        return ast.SilenceBlock(
            **common, starts=arg("from"), ends=arg("until"), during=arg("during")
        )
    if kind == "inhibit":
        return ast.InhibitBlock(**common, while_=arg("while"), on=args("on"))
    return ast.CorrelateBlock(**common, by=args("by"), within=arg("within"))


def _clause_label(clause: Clause) -> str:
    return "window condition" if clause.keyword == "window" else f"'{clause.keyword}'"


# ---------------------------------------------------------------- syntax errors in words


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    return f"'{tok}'"


def _display(term: str) -> str:
    if term in _DISPLAY:
        return _DISPLAY[term]
    try:
        pattern = _PARSER.get_terminal(term).pattern
    except KeyError:
        return term.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return term.lower()


def _clause_words() -> list[str]:
    words = {kw for kws in CLAUSES.values() for kw in kws} - {"window"}
    return sorted(words | {"end", "resolve", "absent"})


def _describe_expected(expected: set[str]) -> str:
    shown = sorted({_display(t) for t in expected})
    if len(shown) > 6:
        shown = [*shown[:5], "…"]
    return " or ".join(shown) if len(shown) <= 2 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _syntax_error(err: UnexpectedInput, text: str) -> RuleSyntaxError:
    line, column = err.line or 1, err.column or 1
    hint = None
    if isinstance(err, UnexpectedToken):
        tok = err.token
        expected = set(err.expected)
        history = getattr(err, "token_history", None) or []
        prev = history[-1] if history else None
        got = _token_text(tok)
        if tok.type == "$END":
            line, column = _end_position(text)
            if "END" in expected:
                message = "the file ends inside a block: expected 'end'"
            else:
                message = f"the file ends too early: expected {_describe_expected(expected)}"
        elif (
            prev is not None
            and prev.type == "NAME"
            and str(prev) in BLOCK_KINDS
            and expected <= {"LPAR"}
        ):
            line, column = prev.line or line, prev.column or column
            message = f"expected 'end' to close the block before this '{prev}'"
        elif expected == {"LPAR"} and prev is not None and prev.type == "NAME":
            line, column = prev.line or line, prev.column or column
            message = (
                f"'{prev}' is not a clause: join conditions with 'and' or 'or', or start a "
                "clause (by, for, severity, notify, …)"
            )
            hint = closest(str(prev), _clause_words())
        elif "COMPOP" in expected:
            if str(tok) == "=":
                message = "'=' is not a comparison: write '=='"
            else:
                after = f" after '{prev}'" if prev is not None else ""
                message = (
                    f"expected an operator (==, and, or, …), a clause or 'end'{after}, got {got}"
                )
        elif expected & _VALUE_STARTS and not expected & {"END", "WHEN"}:
            after = f" after '{prev}'" if prev is not None else ""
            message = f"expected a value{after}, got {got}"
        elif "END" in expected and "WHEN" in expected:
            message = f"expected a clause or 'end', got {got}"
            if tok.type == "NAME":
                hint = closest(str(tok), _clause_words())
        else:
            message = f"expected {_describe_expected(expected)}, got {got}"
    elif isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        char = text[pos] if pos is not None and pos < len(text) else ""
        allowed = set(err.allowed or ())
        if char in "\"'":
            message = "this string is not closed on its line"
        elif allowed and allowed <= {"DAYS"}:
            message = "expected days like daily, mon-fri or sat,sun"
        elif allowed and allowed <= {"CLOCK_RANGE"}:
            message = "expected a time range like 22:00-06:00"
        elif allowed and allowed <= {"TIMESTAMP", "STRING"}:
            message = "expected a timestamp like 2026-11-24T22:00:00Z"
        elif (allowed and allowed <= {"DURATION"}) or (
            allowed and "DURATION" in allowed and char.isdigit()
        ):
            message = "expected a duration like 30s, 5m, 2h or 1d"
        else:
            message = f"unexpected character '{char}'"
    elif isinstance(err, UnexpectedEOF):
        line, column = _end_position(text)
        message = "the file ends inside a block: expected 'end'"
    else:  # pragma: no cover - Lark has no other kinds
        message = str(err)
    return RuleSyntaxError(message, line=line, column=column, hint=hint)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


# ---------------------------------------------------------------- comments


def _attach_comments(
    blocks: list[tuple[_RawBlock, ast.Block]], comments: list[Token], text_lines: list[str]
) -> tuple[str, ...]:
    """Hang each comment on the block or clause it precedes (or ends the line of)."""
    slots: list[tuple[int, int, ast.Block, str]] = []
    for raw, block in blocks:
        slots.append((raw.span.line, raw.id.span.line, block, ""))
        count: dict[str, int] = {}
        for clause in raw.clauses:
            key = clause.keyword
            if key in REPEATABLE:
                count[key] = count.get(key, 0) + 1
                key = f"{key}#{count[key]}"
            slots.append((clause.span.line, clause.end_line, block, key))
        slots.append((raw.end_span.line, raw.end_span.line, block, "end"))
    trailing: list[str] = []
    for tok in sorted(comments, key=lambda t: (t.line or 0, t.column or 0)):
        line = tok.line or 0
        body = str(tok)
        own_line = not text_lines[line - 1][: (tok.column or 1) - 1].strip()
        target: tuple[ast.Block, str] | None = None
        if own_line:
            nxt = next((s for s in slots if s[0] > line), None)
            if nxt is not None:
                target = (nxt[2], nxt[3])
        else:
            spans = [s for s in slots if s[0] <= line <= s[1]]
            if spans:
                target = (spans[-1][2], spans[-1][3] + ">")
        if target is None:
            trailing.append(body)
            continue
        block, key = target
        block.notes[key] = (*block.notes.get(key, ()), body)
    return tuple(trailing)


# ---------------------------------------------------------------- entry points


def _segments(text: str) -> list[tuple[int, str]]:
    """Cut the file where blocks start, so one broken block does not hide the next."""
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(text))
    return [(a, text[a:b]) for a, b in pairwise(starts) if a < b]


# Nesting levels of one expression. The transformer, compiler and printer recurse per level
# and Python's stack holds about 450; past this a block is an error, never a RecursionError.
MAX_DEPTH = 200


def _depth(node: Any) -> int:
    """How deeply a node nests, counted without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        for f in fields(item):
            value = getattr(item, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                if is_dataclass(child) and not isinstance(child, ast.Span):
                    stack.append((child, level + 1))
    return deepest


# Every level of nesting takes one of these tokens (or a clause), so a block with fewer cannot
# be too deep; counting them is much cheaper than walking the tree of every block.
_NESTING = re.compile(r"[-+*/(\[<>=!~]|\b(?:and|or|not|in)\b")


def _may_nest(segment: str) -> bool:
    return len(_NESTING.findall(segment)) > MAX_DEPTH - 10


def _start_of(segment: str, prefix_lines: int) -> tuple[int, int]:
    lead = segment[: len(segment) - len(segment.lstrip())]
    return prefix_lines + 1 + lead.count("\n"), len(lead) - lead.rfind("\n")


def _too_deep(errors: list[DslError], line: int, column: int) -> None:
    errors.append(
        RuleSyntaxError(
            f"this block nests more than {MAX_DEPTH} levels deep; split its condition, "
            "or use 'in [...]' for long lists of alternatives",
            line=line,
            column=column,
        )
    )


def parse_collect(text: str, path: str = "<rules>") -> tuple[ast.RulesFile, list[DslError]]:
    """Parse as much as parses; return the tree of the good blocks and every error found."""
    errors: list[DslError] = []
    built: list[tuple[_RawBlock, ast.Block]] = []
    comments: list[Token] = []
    for offset, segment in _segments(text):
        prefix_lines = text.count("\n", 0, offset)
        padded = "\n" * prefix_lines + segment
        _comments.sink = []
        try:
            raws = _TRANSFORMER.transform(_PARSER.parse(padded))
        except UnexpectedInput as err:
            if (
                isinstance(err, UnexpectedToken)
                and err.token.type == "$END"
                and offset + len(segment) < len(text)
            ):
                nxt = prefix_lines + segment.count("\n") + 1
                # Lines as Lark counts them: "\n" only (splitlines also cuts at \f, \r, \u2028…).
                head = text.split("\n")[nxt - 1]
                col = len(head) - len(head.lstrip())
                word = (head.split() or ["block"])[0]
                errors.append(
                    RuleSyntaxError(
                        f"expected 'end' to close the block before this '{word}'",
                        line=nxt,
                        column=col + 1,
                    )
                )
            else:
                errors.append(_syntax_error(err, padded))
            continue
        except VisitError as err:
            problem = err.orig_exc
            if isinstance(problem, _SemanticProblem):
                errors.append(
                    RuleSemanticError(
                        problem.message,
                        line=problem.span.line,
                        column=problem.span.column,
                        hint=problem.hint,
                    )
                )
                continue
            if not isinstance(problem, RecursionError):
                raise
            _too_deep(errors, *_start_of(segment, prefix_lines))
            continue
        except RecursionError:
            _too_deep(errors, *_start_of(segment, prefix_lines))
            continue
        finally:
            comments.extend(_comments.sink)
            _comments.sink = None
        for raw in raws:
            block = _build_block(raw, errors)
            if block is not None and _may_nest(segment) and _depth(block) > MAX_DEPTH:
                _too_deep(errors, block.id.span.line, block.id.span.column)
            elif block is not None:
                built.append((raw, block))
    trailing = _attach_comments(built, comments, text.split("\n"))
    for e in errors:
        e.located(path, text)
    return ast.RulesFile(tuple(b for _, b in built), path, trailing), errors


def parse(text: str, path: str = "<rules>") -> ast.RulesFile:
    """Parse a rules file; raise DslErrors (every syntax and clause error) if it does not parse."""
    tree, errors = parse_collect(text, path)
    if errors:
        raise DslErrors(errors)
    return tree
