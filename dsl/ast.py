"""The rule language's syntax tree: small frozen dataclasses whose equality ignores positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias


@dataclass(frozen=True)
class Span:
    """Where a node starts and ends in its file (1-based lines and columns)."""

    line: int
    column: int
    end_line: int
    end_column: int


NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Any:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class Duration:
    """A length of time, kept in milliseconds (`500ms`, `30s`, `1h30m`)."""

    ms: int
    span: Span = _span()

    @property
    def seconds(self) -> float:
        return self.ms / 1000


@dataclass(frozen=True)
class ListLit:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Column:
    """A bare name that is a canonical column (`service`, `value`)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    """Any other bare name: a label over events; over alerts also `rule`, `team` or a key field."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Label:
    """A label named explicitly: `labels.env` or `labels["any-key"]`."""

    key: str
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Arith:
    op: str  # + - * /
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class InList:
    operand: Expr
    items: ListLit
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Regex:
    operand: Expr
    pattern: Expr
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...] = ()
    span: Span = _span()


Expr: TypeAlias = (
    String
    | Number
    | Bool
    | Duration
    | ListLit
    | Column
    | Name
    | Label
    | Neg
    | Not
    | Arith
    | Compare
    | And
    | Or
    | InList
    | Regex
    | Call
)
Field: TypeAlias = Column | Name | Label


def field_name(f: Field) -> str:
    """The name a field goes by in keys and templates: `host`, `client_ip`, `any-key`."""
    return f.key if isinstance(f, Label) else f.name


# ---------------------------------------------------------------- clause values


@dataclass(frozen=True)
class Ident:
    """A plain name in a clause: an id, a severity, a team, a channel."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Window:
    """`AGG CMP THRESHOLD within DURATION`; the threshold may use `prev(AGG)`."""

    agg: Call
    op: str
    threshold: Expr
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class LabelSet:
    key: str
    value: String
    span: Span = _span()


@dataclass(frozen=True)
class Escalation:
    after: Duration
    target: Ident
    span: Span = _span()


@dataclass(frozen=True)
class Instant:
    value: datetime
    span: Span = _span()


@dataclass(frozen=True)
class During:
    """A recurring window: `during mon-fri 22:00-06:00 in "Europe/Berlin"`."""

    days: str
    clock: str
    tz: str | None = None
    span: Span = _span()


# ---------------------------------------------------------------- blocks


def _notes() -> Any:
    return field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RuleBlock:
    id: Ident
    title: String | None
    when: Expr
    window: Window | None = None
    absent: Duration | None = None
    new: Duration | None = None
    by: tuple[Field, ...] = ()
    hold: Duration | None = None  # `for`
    resolve_after: Duration | None = None
    severity: Ident | None = None
    team: Ident | None = None
    labels: tuple[LabelSet, ...] = ()
    notify: tuple[Ident, ...] = ()
    escalate: tuple[Escalation, ...] = ()
    span: Span = _span()
    notes: dict[str, tuple[str, ...]] = _notes()

    kind = "rule"


@dataclass(frozen=True)
class RouteBlock:
    id: Ident
    title: String | None
    when: Expr
    team: Ident | None = None
    severity: Ident | None = None
    labels: tuple[LabelSet, ...] = ()
    notify: tuple[Ident, ...] = ()
    escalate: tuple[Escalation, ...] = ()
    is_continue: bool = False
    span: Span = _span()
    notes: dict[str, tuple[str, ...]] = _notes()

    kind = "route"


@dataclass(frozen=True)
class SilenceBlock:
    id: Ident
    title: String | None
    when: Expr
    starts: Instant | None = None
    ends: Instant | None = None
    during: During | None = None
    span: Span = _span()
    notes: dict[str, tuple[str, ...]] = _notes()

    kind = "silence"


@dataclass(frozen=True)
class InhibitBlock:
    id: Ident
    title: String | None
    when: Expr
    while_: Expr
    on: tuple[Field, ...] = ()
    span: Span = _span()
    notes: dict[str, tuple[str, ...]] = _notes()

    kind = "inhibit"


@dataclass(frozen=True)
class CorrelateBlock:
    id: Ident
    title: String | None
    when: Expr
    by: tuple[Field, ...]
    within: Duration
    span: Span = _span()
    notes: dict[str, tuple[str, ...]] = _notes()

    kind = "correlate"


Block: TypeAlias = RuleBlock | RouteBlock | SilenceBlock | InhibitBlock | CorrelateBlock


@dataclass(frozen=True)
class RulesFile:
    blocks: tuple[Block, ...] = ()
    path: str = field(default="<rules>", compare=False)
    trailing_notes: tuple[str, ...] = field(default=(), compare=False)

    def of_kind(self, kind: type[Any]) -> list[Any]:
        return [b for b in self.blocks if isinstance(b, kind)]
