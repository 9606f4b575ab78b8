"""Hypothesis strategies for the rule language's syntax trees (dsl.ast), any shape the grammar has.

Numbers are never negative (a negative is `Neg(Number)`), a `Name` is never a column or a
reserved word, and a block carries only what its kind takes, so every tree has a text form.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from dsl import ast
from dsl.fields import EVENT_COLUMNS
from dsl.functions import AGGREGATES, FUNCTIONS
from dsl.parser import MAX_DURATION_MS

RESERVED = frozenset({"and", "or", "not", "in", "true", "false", "end"})
# Words that are keywords somewhere in a file; as names they must still read back as names.
CLAUSE_WORDS = (
    "rule",
    "route",
    "silence",
    "inhibit",
    "correlate",
    "when",
    "within",
    "absent",
    "new",
    "by",
    "for",
    "resolve",
    "team",
    "notify",
    "escalate",
    "continue",
    "while",
    "on",
    "from",
    "until",
    "during",
    "after",
    "to",
)

ids = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True).filter(lambda s: s not in RESERVED)
words = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True),
    st.sampled_from(CLAUSE_WORDS),
).filter(lambda s: s not in RESERVED)
names = words.filter(lambda s: s not in EVENT_COLUMNS)
# Any text but lone surrogates, which no UTF-8 file can hold.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)

strings = st.builds(ast.String, texts)
numbers = st.builds(
    ast.Number,
    st.one_of(
        st.integers(min_value=0, max_value=10**30),
        st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False),
    ),
)
durations = st.builds(ast.Duration, st.integers(min_value=0, max_value=MAX_DURATION_MS))
fields: st.SearchStrategy[ast.Field] = st.one_of(
    st.builds(ast.Column, st.sampled_from(sorted(EVENT_COLUMNS))),
    st.builds(ast.Name, names),
    st.builds(ast.Label, texts),
)
atoms = st.one_of(
    strings,
    numbers,
    st.builds(ast.Bool, st.booleans()),
    durations,
    fields,
)

COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
CALL_NAMES = st.one_of(st.sampled_from(sorted(FUNCTIONS)), words)


def _lists(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.ListLit]:
    return st.builds(ast.ListLit, st.lists(children, max_size=3).map(tuple))


def _compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        _lists(children),
        st.builds(ast.Call, CALL_NAMES, st.lists(children, max_size=3).map(tuple)),
        st.builds(ast.Neg, children),
        st.builds(ast.Not, children),
        st.builds(ast.Arith, st.sampled_from("+-*/"), children, children),
        st.builds(ast.Compare, st.sampled_from(COMPARE_OPS), children, children),
        st.builds(ast.And, children, children),
        st.builds(ast.Or, children, children),
        st.builds(ast.InList, children, _lists(children), st.booleans()),
        st.builds(ast.Regex, children, children, st.booleans()),
    )


exprs: st.SearchStrategy[ast.Expr] = st.recursive(atoms, _compound, max_leaves=12)

idents = st.builds(ast.Ident, ids)
# team NAME | STRING: any text; targets NAME or NAME:NAME
teams = st.builds(ast.Ident, texts)
targets = st.builds(
    ast.Ident, st.one_of(words, st.tuples(words, words).map(lambda p: f"{p[0]}:{p[1]}"))
)
severities = st.builds(ast.Ident, words)
titles = st.none() | strings
label_sets = st.lists(st.builds(ast.LabelSet, texts, strings), max_size=3).map(tuple)
notifies = st.lists(targets, max_size=3).map(tuple)
escalations = st.lists(st.builds(ast.Escalation, durations, targets), max_size=2).map(tuple)
field_lists = st.lists(fields, min_size=1, max_size=3).map(tuple)
windows = st.builds(
    ast.Window,
    st.builds(
        ast.Call,
        st.sampled_from(sorted(AGGREGATES)),
        st.lists(exprs, max_size=2).map(tuple),
    ),
    st.sampled_from(COMPARE_OPS),
    exprs,
    durations,
)
instants = st.builds(
    ast.Instant,
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
)
durings = st.builds(
    ast.During,
    st.from_regex(r"[a-z]{1,5}(-[a-z]{1,5})?(,[a-z]{1,5}(-[a-z]{1,5})?){0,2}", fullmatch=True),
    st.from_regex(r"[0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}", fullmatch=True),
    st.none() | texts,
)


@st.composite
def rule_blocks(draw: st.DrawFn) -> ast.RuleBlock:
    condition = draw(st.sampled_from(["window", "absent", "new", None]))
    return ast.RuleBlock(
        id=draw(idents),
        title=draw(titles),
        when=draw(exprs),
        window=draw(windows) if condition == "window" else None,
        absent=draw(durations) if condition == "absent" else None,
        new=draw(durations) if condition == "new" else None,
        by=draw(st.just(()) | field_lists),
        hold=draw(st.none() | durations),
        resolve_after=draw(st.none() | durations),
        severity=draw(st.none() | severities),
        team=draw(st.none() | teams),
        labels=draw(label_sets),
        notify=draw(notifies),
        escalate=draw(escalations),
    )


route_blocks = st.builds(
    ast.RouteBlock,
    id=idents,
    title=titles,
    when=exprs,
    team=st.none() | teams,
    severity=st.none() | severities,
    labels=label_sets,
    notify=notifies,
    escalate=escalations,
    is_continue=st.booleans(),
)
silence_blocks = st.builds(
    ast.SilenceBlock,
    id=idents,
    title=titles,
    when=exprs,
    starts=st.none() | instants,
    ends=st.none() | instants,
    during=st.none() | durings,
)
inhibit_blocks = st.builds(
    ast.InhibitBlock, id=idents, title=titles, when=exprs, while_=exprs, on=field_lists
)
correlate_blocks = st.builds(
    ast.CorrelateBlock, id=idents, title=titles, when=exprs, by=field_lists, within=durations
)
blocks = st.one_of(rule_blocks(), route_blocks, silence_blocks, inhibit_blocks, correlate_blocks)
rules_files = st.builds(ast.RulesFile, st.lists(blocks, max_size=3).map(tuple))


# ---------------------------------------------------------------- conditions that compile
# Typed generation: every expression below passes the compiler's checks, so a property can
# compare what it computes with tests/dsl/reference.py on any frame. Each strategy first picks
# a shape uniformly, so the shapes rules have (a field against a literal) come up often.

LABEL_KEYS = ("a", "b", "x")
TEXT_COLUMNS = ("source", "service", "host", "kind", "status")
# Values chosen to sit on the edges of DSL.md §2: empty, numeric-looking in every spelling
# NUMERIC_TEXT takes or refuses, severity names, case, spaces and a newline.
LABEL_VALUES = (
    "",
    "0",
    "-0",
    "1",
    "-1",
    "2.5",
    "1e3",
    ".5",
    "5.",
    "+2",
    "1e999",
    "nan",
    "inf",
    "-inf",
    "1_000",
    " 1",
    "5\n",
    "0x10",
    "abc",
    "ABC",
    "a b",
    "é",
    "high",
    "critical",
    "Info",
    "api",
    "web-1",
)
TEXT_LITERALS = ("", "a", "abc", "ABC", "1", "2.5", "api", "web", "-", "é", "high", "b", ".")
NUMBER_LITERALS = (0, 1, 2, 0.5, 2.5, 1000, 1e308, -1, -2.5)
CLOSED = {"kind": ("alert", "event"), "status": ("firing", "resolved")}
SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")

label_fields = st.builds(
    lambda key, dotted: ast.Label(key) if dotted else ast.Name(key),
    st.sampled_from(LABEL_KEYS),
    st.booleans(),
)
text_columns = st.builds(ast.Column, st.sampled_from(TEXT_COLUMNS))
text_fields = st.one_of(label_fields, text_columns)
text_literals = st.builds(ast.String, st.sampled_from(TEXT_LITERALS))
number_literals = st.sampled_from(NUMBER_LITERALS).map(
    lambda n: ast.Neg(ast.Number(-n)) if n < 0 else ast.Number(n)
)

# a simple regex subset Python's re and Rust's regex read alike
_regex_atoms = st.sampled_from(
    ["a", "b", "c", "A", "1", "0", "-", " ", "é", ".", "[ab]", "[a-c]", "[^a]", "[0-9]"]
)
_regex_pieces = st.tuples(_regex_atoms, st.sampled_from(["", "", "*", "+", "?"])).map("".join)
_regex_seqs = st.lists(_regex_pieces, max_size=3).map("".join)
_regex_alts = st.lists(_regex_seqs, min_size=1, max_size=2).map("|".join)
regexes = st.tuples(
    st.sampled_from(["", "^"]),
    st.one_of(_regex_alts, _regex_alts.map(lambda r: f"({r})")),
    st.sampled_from(["", "$"]),
).map("".join)


@st.composite
def text_values(draw: st.DrawFn, depth: int = 2) -> ast.Expr:
    shape = draw(st.sampled_from(["field", "field", "literal"] + (["case"] if depth else [])))
    if shape == "field":
        return draw(text_fields)
    if shape == "literal":
        return draw(text_literals)
    name = draw(st.sampled_from(["lower", "upper"]))
    return ast.Call(name, (draw(text_values(depth - 1)),))


@st.composite
def number_values(draw: st.DrawFn, depth: int = 2) -> ast.Expr:
    shapes = ["value", "literal", "duration"]
    if depth:
        shapes += ["neg", "arith", "arith", "len", "abs"]
    shape = draw(st.sampled_from(shapes))
    if shape == "value":
        return ast.Column("value")
    if shape == "literal":
        return draw(number_literals)
    if shape == "duration":
        return ast.Duration(draw(st.sampled_from((500, 1000, 60_000))))
    if shape == "len":
        return ast.Call("len", (draw(text_values(1)),))
    # In arithmetic and abs() a label or a text column is read as a number too.
    operand = st.one_of(number_values(depth - 1), text_fields)
    if shape == "neg":
        return ast.Neg(draw(operand))
    if shape == "abs":
        return ast.Call("abs", (draw(operand),))
    return ast.Arith(draw(st.sampled_from("+-*/")), draw(operand), draw(operand))


def _fix_closed(draw: st.DrawFn, left: ast.Expr, right: ast.Expr) -> tuple[ast.Expr, ast.Expr]:
    """A literal next to kind or status must be one of their values, else it is an error."""
    if isinstance(left, ast.Column) and left.name in CLOSED and isinstance(right, ast.String):
        return left, ast.String(draw(st.sampled_from(CLOSED[left.name])))
    if isinstance(right, ast.Column) and right.name in CLOSED and isinstance(left, ast.String):
        return ast.String(draw(st.sampled_from(CLOSED[right.name]))), right
    return left, right


@st.composite
def text_comparisons(draw: st.DrawFn) -> ast.Expr:
    shape = draw(st.sampled_from(["field-literal", "field-field", "any"]))
    if shape == "field-literal":
        pair = [draw(text_fields), draw(text_literals)]
    elif shape == "field-field":
        pair = [draw(text_fields), draw(text_fields)]
    else:
        pair = [draw(text_values()), draw(text_values())]
    left, right = _fix_closed(draw, *draw(st.permutations(pair)))
    return ast.Compare(draw(st.sampled_from(COMPARE_OPS)), left, right)


@st.composite
def number_comparisons(draw: st.DrawFn) -> ast.Expr:
    shape = draw(st.sampled_from(["field-literal", "value-literal", "any-field", "any"]))
    if shape == "field-literal":
        pair = [draw(text_fields), draw(number_literals)]
    elif shape == "value-literal":
        pair = [ast.Column("value"), draw(number_literals)]
    elif shape == "any-field":
        pair = [draw(number_values()), draw(text_fields)]
    else:
        pair = [draw(number_values()), draw(number_values())]
    left, right = draw(st.permutations(pair))
    return ast.Compare(draw(st.sampled_from(COMPARE_OPS)), left, right)


@st.composite
def severity_comparisons(draw: st.DrawFn) -> ast.Expr:
    shape = draw(st.sampled_from(["literal", "literal", "field", "severity"]))
    if shape == "literal":
        other: ast.Expr = ast.String(draw(st.sampled_from(SEVERITY_NAMES)))
    elif shape == "field":
        other = draw(text_fields)
    else:
        other = ast.Column("severity")
    left, right = draw(st.permutations([ast.Column("severity"), other]))
    return ast.Compare(draw(st.sampled_from(COMPARE_OPS)), left, right)


@st.composite
def memberships(draw: st.DrawFn) -> ast.Expr:
    shape = draw(st.sampled_from(["text", "number", "severity"]))
    items: list[ast.Expr]
    if shape == "text":
        operand = draw(text_values())
        pool = TEXT_LITERALS
        if isinstance(operand, ast.Column) and operand.name in CLOSED:
            pool = CLOSED[operand.name]
        items = [ast.String(s) for s in draw(st.lists(st.sampled_from(pool), max_size=3))]
    elif shape == "number":
        operand = draw(st.one_of(text_fields, number_values()))
        items = draw(st.lists(number_literals, min_size=1, max_size=3))
    else:
        operand = ast.Column("severity")
        names = draw(st.lists(st.sampled_from(SEVERITY_NAMES), max_size=3))
        items = [ast.String(s) for s in names]
    return ast.InList(operand, ast.ListLit(tuple(items)), draw(st.booleans()))


@st.composite
def string_tests(draw: st.DrawFn) -> ast.Expr:
    shape = draw(st.sampled_from(["regex", "text", "exists"]))
    if shape == "regex":
        operand = draw(st.one_of(text_values(), st.just(ast.Column("severity"))))
        return ast.Regex(operand, ast.String(draw(regexes)), draw(st.booleans()))
    if shape == "text":
        name = draw(st.sampled_from(["contains", "startswith", "endswith"]))
        return ast.Call(name, (draw(text_values()), draw(st.one_of(text_literals, text_values()))))
    columns = st.sampled_from([ast.Column("value"), ast.Column("severity")])
    return ast.Call("exists", (draw(st.one_of(text_fields, columns)),))


simple_conditions = st.one_of(
    text_comparisons(),
    number_comparisons(),
    severity_comparisons(),
    memberships(),
    string_tests(),
    st.builds(ast.Bool, st.booleans()),
)


def _logic(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(ast.Not, children),
        st.builds(ast.And, children, children),
        st.builds(ast.Or, children, children),
        st.builds(ast.Compare, st.sampled_from(["==", "!="]), children, children),
    )


conditions = st.recursive(simple_conditions, _logic, max_leaves=4)

# ---------------------------------------------------------------- events full of missing values

_texts_or_missing = st.sampled_from((None, "", "api", "API", "web-1", "1", "2.5", "abc", "é"))
_label_maps = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(LABEL_KEYS),
        st.one_of(st.sampled_from(LABEL_VALUES), st.none()),
        max_size=len(LABEL_KEYS),
    ),
)
event_rows = st.fixed_dictionaries(
    {
        "kind": st.sampled_from((None, "alert", "event")),
        "status": st.sampled_from((None, "firing", "resolved")),
        "severity": st.sampled_from((None, *SEVERITY_NAMES)),
        "source": _texts_or_missing,
        "service": _texts_or_missing,
        "host": _texts_or_missing,
        "value": st.one_of(
            st.none(),
            st.sampled_from((0.0, -0.0, 1.0, -1.0, 2.5, 1000.0, 1e308, float("inf"))),
            st.just(float("nan")),
            st.floats(allow_nan=False, width=32),
        ),
        "labels": _label_maps,
    }
)
