"""Property: any text at all gets DslErrors or a tree, never another exception.

Token soup and random edits of valid files go through `check_rules`, `parse` and, when they
parse, `print_rules` (which must give text that parses back to the same tree). The parser is
LALR, linear in the text; speed is measured in bench/dsl, not here (a CPU-time limit per parse
failed a 2,000-rule text at 1.01 s on a busy machine). The timeout only stops a hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import DslError, DslErrors, check_rules, parse, print_rules
from tests.dsl.test_syntax import EVERY_CLAUSE

pytestmark = pytest.mark.timeout(600)

VALID_FILES = [
    EVERY_CLAUSE,
    *(
        p.read_text(encoding="utf-8")
        for p in sorted((Path(__file__).parent / "golden").glob("*.klx"))
        if p.stem in ("identity", "messy_layout", "comments", "literals", "functions")
    ),
]

WORDS = (
    # blocks and clauses
    *("rule", "route", "silence", "inhibit", "correlate", "end", "when", "by", "for", "resolve"),
    *("after", "severity", "team", "labels", "notify", "escalate", "to", "continue", "while"),
    *("on", "from", "until", "during", "in", "within", "absent", "new", "daily", "mon-fri"),
    # expressions
    *("and", "or", "not", "true", "false", "count()", "prev(", "p99(", "lower(", "exists("),
    *("==", "!=", "<", "<=", ">", ">=", "=", "=~", "!~", "+", "-", "*", "/", "(", ")", "[", "]"),
    *(",", ".", ":", "labels.", 'labels["', "{{", "}}", "{{ x }}", "$"),
    # literals, good and broken
    *('"text"', "'single'", '"unclosed', '"esc\\"aped"', '"\\', "42", "0.05", "1e5", "5m"),
    *(
        "1h30m",
        "500ms",
        "9" * 400,
        "9" * 5000 + "s",
        "2026-11-24T22:00:00Z",
        "0001-01-01T00:00:00+01:00",
    ),
    *("22:00-06:00", "99:99-00:00", '"Europe/Berlin"', '"Mars/Olympus"', '"(unclosed"'),
    *("service", "value", "severity", "critical", "hgih", "error_rate", "x", "api", "_", "A"),
    # whitespace, comments and odd characters
    *(" ", "  ", "\n", "\n\n", "\t", "\r\n", "\r", "\x0c", "\x0b", "\u2028", "\x00", "\x1c"),
    *("# comment", "#", "é", "\U0001f525", "@", ";", "\\", "`", "{", "}", "~", "!"),
)

token_soup = st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join) | st.lists(
    st.sampled_from(WORDS), max_size=60
).map("".join)


@st.composite
def edited_files(draw: st.DrawFn) -> str:
    """A valid file with a few random edits: delete, insert, swap characters or words."""
    text = draw(st.sampled_from(VALID_FILES))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not text:
            break
        kind = draw(st.sampled_from(["delete", "insert", "swap", "swap_words", "cut_lines"]))
        i = draw(st.integers(min_value=0, max_value=len(text) - 1))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(min_value=1, max_value=12)) :]
        elif kind == "insert":
            insert = draw(st.sampled_from(WORDS) | st.text(max_size=3))
            text = text[:i] + insert + text[i:]
        elif kind == "swap":
            j = draw(st.integers(min_value=0, max_value=len(text) - 1))
            chars = list(text)
            chars[i], chars[j] = chars[j], chars[i]
            text = "".join(chars)
        elif kind == "swap_words":
            words = text.split(" ")
            a = draw(st.integers(min_value=0, max_value=len(words) - 1))
            b = draw(st.integers(min_value=0, max_value=len(words) - 1))
            words[a], words[b] = words[b], words[a]
            text = " ".join(words)
        else:
            lines = text.split("\n")
            a = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            del lines[a : a + draw(st.integers(min_value=1, max_value=3))]
            text = "\n".join(lines)
    return text


def assert_only_dsl_errors(text: str) -> None:
    found = check_rules(text, "fuzz.klx")
    assert isinstance(found, list)
    for err in found:
        assert isinstance(err, DslError), repr(err)
        assert err.line >= 1, str(err)
        assert err.column >= 1, str(err)
        assert str(err).startswith(f"fuzz.klx:{err.line}:{err.column}: error: ")
        assert err.to_dict()["line"] == err.line
    try:
        tree = parse(text, "fuzz.klx")
    except DslErrors as many:
        problems = many.errors
    else:
        problems = []
    if problems:
        assert all(isinstance(e, DslError) for e in problems)
        # parse raises exactly the errors check finds before compiling
        assert {str(e) for e in problems} <= {str(e) for e in found}
        return
    # It parses: `klaxon fmt` must give text that parses back to the same tree.
    printed = print_rules(tree)
    assert parse(printed) == tree, printed


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.hypothesis
@FUZZ
@given(token_soup)
def test_token_soup_gives_only_dsl_errors(text: str) -> None:
    assert_only_dsl_errors(text)


@pytest.mark.hypothesis
@FUZZ
@given(edited_files())
def test_edited_valid_files_give_only_dsl_errors(text: str) -> None:
    assert_only_dsl_errors(text)


@pytest.mark.hypothesis
@FUZZ
@given(st.text(max_size=80))
def test_any_text_gives_only_dsl_errors(text: str) -> None:
    assert_only_dsl_errors(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00",
        "rule",
        "end",
        "rule r when",
        "rule r when a ==",
        "rule r\rwhen a == 1\rend",
        "rule r\x0cwhen a == 1 end\n# c\x0c\nrule r2 when x end",
        "rule a when x == 1 \x0c\n\nrule b when y == 1 end",
        "rule a when x == 1 # \u2028\n\n\nroute b when y == 1 end",
        "rule r when a == '\u2028' and == end",
        '"' * 3,
        "{{" * 50,
        "(" * 2000,
        "not " * 2000 + "a",
        "rule r when " + "(" * 500 + "a == 1" + ")" * 500 + " end",
        "rule r when " + " and ".join(f"a{i} == {i}" for i in range(3000)) + " end",
        "rule r when a == 1 end\n" * 2000,
    ],
)
def test_edge_texts_give_only_dsl_errors(text: str) -> None:
    assert_only_dsl_errors(text)
