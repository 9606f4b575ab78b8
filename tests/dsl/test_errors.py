"""Every error kind in dsl/errors.py: its class, where it points and how it reads (DSL.md §6)."""

from __future__ import annotations

import inspect

import pytest

from dsl import DslError, DslErrors, check_rules, errors, load_rules, parse

# (error class, rules text, line, column, words the message must have)
# Each line and column is the offending token: for a duplicate id the later id, for a
# conflicting clause the later clause's keyword (DSL.md §6).
CASES: list[tuple[type[DslError], str, int, int, str]] = [
    # ---- syntax
    (
        errors.RuleSyntaxError,
        'rule r\n  when source == and service == "api"\nend\n',
        2,
        18,
        "expected a value after '==', got 'and'",
    ),
    (
        errors.RuleSyntaxError,
        "rule r\n  when a == 1 and\nend\n",
        3,
        1,
        "expected a value after 'and'",
    ),
    (errors.RuleSyntaxError, "rule r\n  when\nend\n", 3, 1, "expected a value after 'when'"),
    (errors.RuleSyntaxError, "rule r\n  when a = 1\nend\n", 2, 10, "'=' is not a comparison"),
    (errors.RuleSyntaxError, "rule r\n  when a == 1\n", 2, 14, "ends inside a block"),
    (errors.RuleSyntaxError, "rule r\n  when a == 1\nrule s\n  when b == 1\nend\n", 3, 1, "'end'"),
    (errors.RuleSyntaxError, 'rule r\n  when a == "x\nend\n', 2, 13, "not closed"),
    (errors.RuleSyntaxError, "rule r\n  when a == 1 @\nend\n", 2, 15, "unexpected character '@'"),
    (errors.RuleSyntaxError, "rule r\n  when (a == 1\nend\n", 3, 1, "expected ')'"),
    (errors.RuleSyntaxError, "rule r\n  when a == 1 == 2\nend\n", 2, 15, "got '=='"),
    (errors.RuleSyntaxError, "rule r\n  when a == 1\nend\nend\n", 4, 1, "got 'end'"),
    (
        errors.RuleSyntaxError,
        "rule r\n  when a == 1\n  sevrity high\nend\n",
        3,
        3,
        "'sevrity' is not a clause",
    ),
    # ---- clauses that do not belong, ids, names
    (errors.RuleSemanticError, "rule r\n  when a == 1\n  continue\nend\n", 3, 3, "route block"),
    (errors.RuleSemanticError, "route r\n  notify x\nend\n", 1, 7, "missing its 'when'"),
    (errors.RuleSemanticError, "rule Api\n  when a == 1\nend\n", 1, 6, "not a valid id"),
    (errors.RuleSemanticError, "rule r\n  when foo.bar == 1\nend\n", 2, 8, "labels.bar"),
    (errors.RuleSemanticError, 'rule r\n  when status == "fireing"\nend\n', 2, 18, "not a status"),
    (errors.RuleSemanticError, "rule r\n  when a == 1\n  by host, host\nend\n", 3, 12, "already"),
    # ---- unknown severity, with a did-you-mean hint
    (
        errors.UnknownSeverityError,
        "rule r\n  when a == 1\n  severity critcal\nend\n",
        3,
        12,
        "unknown severity 'critcal'",
    ),
    (
        errors.UnknownSeverityError,
        'rule r\n  when severity >= "hgih"\nend\n',
        2,
        20,
        "unknown severity 'hgih'",
    ),
    (
        errors.UnknownSeverityError,
        'route r\n  when severity in ["high", "urgent"]\nend\n',
        2,
        29,
        "unknown severity 'urgent'",
    ),
    (
        errors.UnknownSeverityError,
        'route r\n  when a == "1"\n  severity sever\nend\n',
        3,
        12,
        "unknown severity 'sever'",
    ),
    # ---- duplicate ids: the later id
    (
        errors.DuplicateIdError,
        'rule api\n  when a == 1\nend\n\nroute api\n  when b == "x"\nend\n',
        5,
        7,
        "'api' is already the id of the rule on line 1",
    ),
    # ---- conflicting clauses: the later keyword
    (
        errors.ConflictingClauseError,
        "rule r\n  when a == 1\n  for 1m\n  severity low\n  for 2m\nend\n",
        5,
        3,
        "already has 'for' (line 3)",
    ),
    (
        errors.ConflictingClauseError,
        "rule r\n  when a == 1\n  count() > 5 within 1m\n  absent for 5m\nend\n",
        4,
        3,
        "conflicts with the window condition on line 3",
    ),
    (
        errors.ConflictingClauseError,
        "rule r\n  when a == 1\n  new within 1h\n  count() > 5 within 1m\nend\n",
        4,
        3,
        "conflicts with the 'new' on line 3",
    ),
    (
        errors.ConflictingClauseError,
        "rule r\n  when a == 1\n  when b == 2\nend\n",
        3,
        3,
        "already has 'when'",
    ),
    # ---- unknown function or wrong number of arguments
    (
        errors.UnknownFunctionError,
        "rule r\n  when lenn(a) > 1\nend\n",
        2,
        8,
        "unknown function 'lenn'",
    ),
    (
        errors.UnknownFunctionError,
        "rule r\n  when a == 1 and contains(a) \nend\n",
        2,
        19,
        "contains() takes 2 arguments, got 1",
    ),
    (
        errors.UnknownFunctionError,
        'rule r\n  when lower(a, b) == "x"\nend\n',
        2,
        8,
        "lower() takes 1 argument, got 2",
    ),
    (errors.UnknownFunctionError, "rule r\n  when count() > 5\nend\n", 2, 8, "window aggregate"),
    (
        errors.UnknownFunctionError,
        "rule r\n  when a == 1\n  cnt() > 5 within 1m\nend\n",
        3,
        3,
        "not a window aggregate",
    ),
    (
        errors.UnknownFunctionError,
        "rule r\n  when a == 1\n  sum() > 5 within 1m\nend\n",
        3,
        3,
        "sum() takes a field",
    ),
    # ---- regular expressions that do not compile
    (
        errors.BadRegexError,
        'rule r\n  when a =~ "(unclosed"\nend\n',
        2,
        13,
        "bad regular expression",
    ),
    (errors.BadRegexError, 'rule r\n  when a !~ "[z-a]"\nend\n', 2, 13, "bad regular expression"),
    # ---- broken templates: the column of the `{{`
    (errors.TemplateError, 'rule r "x {{ y"\n  when a == 1\nend\n', 1, 11, "never closed"),
    (
        errors.TemplateError,
        'rule r\n  when a == 1\n  labels k = "{{ }}"\nend\n',
        3,
        15,
        "empty '{{ }}'",
    ),
    (
        errors.TemplateError,
        'rule r\n  when a == 1\n  labels k = "v", j = "a {{ 1x }}"\nend\n',
        3,
        26,
        "'1x' is not a field name",
    ),
    (
        errors.TemplateError,
        'route r\n  when a == "1"\n  labels k = "{{ {{ x }}"\nend\n',
        3,
        15,
        "never closed",
    ),
    # ---- type mismatches
    (errors.TypeMismatchError, 'rule r\n  when value == "x"\nend\n', 2, 17, "number"),
    (errors.TypeMismatchError, "rule r\n  when service\nend\n", 2, 8, "not a condition"),
    (errors.TypeMismatchError, 'rule r\n  when a in [1, "x"]\nend\n', 2, 13, "mixes"),
    (errors.TypeMismatchError, "rule r\n  when [1] == a\nend\n", 2, 8, "list"),
    (errors.TypeMismatchError, "rule r\n  when a and b\nend\n", 2, 8, "not a condition"),
    (errors.TypeMismatchError, 'rule r\n  when "a" + 1 > 2\nend\n', 2, 8, "not a number"),
    (errors.TypeMismatchError, "rule r\n  when severity > 3\nend\n", 2, 8, "severity"),
    (errors.TypeMismatchError, "rule r\n  when (a == 1) < (b == 1)\nend\n", 2, 8, "ordered"),
    (errors.TypeMismatchError, "rule r\n  when labels == 1\nend\n", 2, 8, "label map"),
    (errors.TypeMismatchError, 'rule r\n  when exists("a")\nend\n', 2, 15, "field name"),
    (errors.TypeMismatchError, "rule r\n  when a == 1\n  count() > a within 1m\nend\n", 3, 13, ""),
    # ---- silences: time zone, day, hour
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  during mon-fri 22:00-06:00 in "Mars/Olympus"\nend\n',
        3,
        3,
        "unknown time zone 'Mars/Olympus'",
    ),
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  during mon-fry 22:00-06:00\nend\n',
        3,
        3,
        "unknown day 'fry'",
    ),
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  during daily 25:00-06:00\nend\n',
        3,
        3,
        "'25:00' is not a time of day",
    ),
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  during sat 10:60-11:00\nend\n',
        3,
        3,
        "'10:60' is not a time of day",
    ),
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  during daily 10:00-10:00\nend\n',
        3,
        3,
        "empty",
    ),
    (
        errors.BadScheduleError,
        'silence s\n  when a == "1"\n  from 2026-01-02T00:00:00Z\n'
        "  until 2026-01-01T00:00:00Z\nend\n",
        4,
        9,
        "'until' must be after 'from'",
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "line", "column", "words"),
    CASES,
    ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)],
)
def test_error(kind: type[DslError], text: str, line: int, column: int, words: str) -> None:
    found = check_rules(text, "rules/x.klx")
    assert len(found) == 1, "\n".join(map(str, found))
    (err,) = found
    assert type(err) is kind
    assert (err.line, err.column) == (line, column), str(err)
    assert words in err.message
    head, source, caret = str(err).split("\n")
    assert head == f"rules/x.klx:{line}:{column}: error: {err.full_message}"
    assert source == text.splitlines()[line - 1]
    assert caret == " " * (column - 1) + "^"


def test_every_error_class_has_a_case() -> None:
    classes = {
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, DslError) and c not in (DslError, DslErrors)
    }
    assert classes == {case[0] for case in CASES}


def test_the_example_of_dsl_md_section_6_exactly() -> None:
    text = 'rule api\n  when source == and service == "api"\nend\n'
    (err,) = check_rules(text, "rules/api.rules")
    assert str(err) == (
        "rules/api.rules:2:18: error: expected a value after '==', got 'and'\n"
        '  when source == and service == "api"\n'
        "                 ^"
    )


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("rule r\n  when a == 1\n  severity critcal\nend\n", "'critical'"),
        ("rule r\n  when a == 1\n  severity CRITICAL\nend\n", "'critical'"),
        ('rule r\n  when severity >= "hgih"\nend\n', "'high'"),
        ('rule r\n  when severity == "meduim"\nend\n', "'medium'"),
        ("rule r\n  when lenn(a) > 1\nend\n", "'len'"),
        ("rule r\n  when a == 1\n  sevrity high\nend\n", "'severity'"),
        ('silence s\n  when a == "1"\n  during mon-fry 22:00-06:00\nend\n', "'fri'"),
        ("rule r\n  when a == 1\n  cnt() > 5 within 1m\nend\n", "'count'"),
    ],
)
def test_did_you_mean(text: str, hint: str) -> None:
    (err,) = check_rules(text, "x.klx")
    assert err.hint == hint
    assert f"(did you mean {hint}?)" in str(err).splitlines()[0]
    assert err.to_dict()["hint"] == hint


def test_no_hint_when_nothing_is_close() -> None:
    (err,) = check_rules("rule r\n  when a == 1\n  severity zzzzzz\nend\n")
    assert err.hint is None
    assert "did you mean" not in str(err)


def test_errors_come_in_file_order_across_blocks_and_kinds() -> None:
    text = (
        "rule a\n  when x == 1\n  severity hgh\nend\n"  # 3: unknown severity
        "rule b\n  when y ==\nend\n"  # 7: syntax, and the file goes on
        "rule a\n  when z == 1\nend\n"  # 8: duplicate id
        'rule c\n  when w =~ "("\nend\n'  # 12: bad regex
    )
    found = check_rules(text, "f.klx")
    assert [(type(e).__name__, e.line) for e in found] == [
        ("UnknownSeverityError", 3),
        ("RuleSyntaxError", 7),
        ("DuplicateIdError", 8),
        ("BadRegexError", 12),
    ]
    with pytest.raises(DslErrors) as caught:
        load_rules(text, "f.klx")
    assert str(caught.value) == "\n".join(str(e) for e in found)
    assert [e["line"] for e in caught.value.to_dict()["errors"]] == [3, 7, 8, 12]


def test_to_dict_carries_the_fields_of_str() -> None:
    (err,) = check_rules("rule r\n  when a == 1\n  severity hgh\nend\n", "f.klx")
    assert err.to_dict() == {
        "path": "f.klx",
        "line": 3,
        "column": 12,
        "message": err.full_message,
        "hint": "'high'",
        "source_line": "  severity hgh",
        "kind": "UnknownSeverityError",
        "text": str(err),
    }


def test_a_caret_under_a_tab_keeps_the_tab() -> None:
    (err,) = check_rules("rule r\n\twhen a == and\nend\n", "f.klx")
    assert str(err).splitlines()[1:] == ["\twhen a == and", "\t          ^"]


def test_parse_and_check_agree_on_syntax_errors() -> None:
    text = "rule r\n  when a == \nend\n"
    with pytest.raises(DslErrors) as caught:
        parse(text, "f.klx")
    assert [str(e) for e in caught.value.errors] == [str(e) for e in check_rules(text, "f.klx")]


def test_a_number_too_large_for_a_float_is_an_error_not_a_crash() -> None:
    (err,) = check_rules(f"rule r\n  when a == {'9' * 400}\nend\n", "f.klx")
    assert isinstance(err, errors.RuleSemanticError)
    assert (err.line, err.column) == (2, 13)


@pytest.mark.parametrize("duration", ["9" * 30 + "d", "9" * 5000 + "s", "2000000w"])
def test_a_duration_too_long_is_an_error_not_a_crash(duration: str) -> None:
    (err,) = check_rules(f"rule r\n  when a == 1\n  for {duration}\nend\n", "f.klx")
    assert isinstance(err, errors.RuleSemanticError)
    assert (err.line, err.column, err.message[:12]) == (3, 7, "the duration")


@pytest.mark.parametrize("digits", [310, 5000])
def test_a_number_too_large_for_a_float_is_an_error(digits: int) -> None:
    for number in ("9" * digits, "9" * digits + ".5"):
        (err,) = check_rules(f"rule r\n  when a == {number}\nend\n", "f.klx")
        assert (err.line, err.column, err.message) == (2, 13, "this number is too large")


def test_the_largest_float_is_a_number() -> None:
    assert check_rules(f"rule r\n  when a == {10**308}\nend\n") == []


@pytest.mark.parametrize(
    "condition",
    [
        " and ".join(f"a{i} == {i}" for i in range(300)),  # the compiler would overflow
        " or ".join(f"a == {i}" for i in range(5000)),  # Lark's transformer would overflow
        "not " * 3000 + "a == 1",
        " + ".join(["a"] * 1000) + " > 1",
    ],
)
def test_a_condition_nested_too_deeply_is_an_error_not_a_recursion_error(condition: str) -> None:
    text = f"rule ok\n  when a == 1\nend\n\n  rule deep\n  when {condition}\nend\n"
    (err,) = check_rules(text, "f.klx")
    assert isinstance(err, errors.RuleSyntaxError)
    assert err.line == 5
    assert err.column in (3, 8)  # the block word, or its id when the tree was built
    assert "nests more than" in err.message


def test_a_long_list_is_not_deep() -> None:
    assert check_rules(f"rule r\n  when a in [{', '.join(map(str, range(5000)))}]\nend\n") == []


@pytest.mark.parametrize(
    "before",
    [
        "# a comment with a form feed \x0c in it\n",
        "# a comment with a line separator \u2028 in it\n",
        'rule a\n  when x == "\x1c"\nend\n',
        "\x0c\n",
    ],
)
def test_the_source_line_is_the_line_the_parser_counted(before: str) -> None:
    # Python's splitlines also cuts at \f, \x1c, \u2028 and more; the parser counts "\n" only.
    text = before + "rule r\n  when x == and\nend\n"
    (err,) = check_rules(text, "f.klx")
    assert err.line == before.count("\n") + 2
    assert err.source_line == "  when x == and"


def test_crlf_line_endings_keep_the_caret_under_the_column() -> None:
    (err,) = check_rules("rule r\r\n  when x == and\r\nend\r\n", "f.klx")
    assert str(err).split("\n")[1:] == ["  when x == and", "            ^"]


def test_a_block_without_end_before_a_line_the_parser_counts_differently() -> None:
    (err,) = check_rules("rule a\n  when x == 1 \x0c\n\nrule b\n  when y == 1\nend\n", "f.klx")
    assert (err.line, err.column) == (4, 1)
    assert err.message == "expected 'end' to close the block before this 'rule'"
