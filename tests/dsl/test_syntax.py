"""What text parses to: precedence (DSL.md §3), names (§2) and every block and clause (§4–5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dsl import DslErrors, ast, check_rules, load_rules, parse, print_rules
from tests.dsl.frames import evaluate, labels, when_of

A, B, C, D = (ast.Name(n) for n in "abcd")
N1, N2, N3 = (ast.Number(n) for n in (1, 2, 3))


def cmp(op: str, left: ast.Expr, right: ast.Expr) -> ast.Compare:
    return ast.Compare(op, left, right)


def arith(op: str, left: ast.Expr, right: ast.Expr) -> ast.Arith:
    return ast.Arith(op, left, right)


# ---------------------------------------------------------------- precedence, loosest first


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        # or < and
        ("a or b and c", ast.Or(A, ast.And(B, C))),
        ("a and b or c", ast.Or(ast.And(A, B), C)),
        ("a or b or c", ast.Or(ast.Or(A, B), C)),
        ("a and b and c", ast.And(ast.And(A, B), C)),
        # and < not
        ("not a and b", ast.And(ast.Not(A), B)),
        ("a and not b", ast.And(A, ast.Not(B))),
        ("not a or not b", ast.Or(ast.Not(A), ast.Not(B))),
        ("not not a", ast.Not(ast.Not(A))),
        # not < comparisons: `not a == b` means `not (a == b)`
        ("not a == b", ast.Not(cmp("==", A, B))),
        ("not a in [1]", ast.Not(ast.InList(A, ast.ListLit((N1,))))),
        ("not a =~ b", ast.Not(ast.Regex(A, B))),
        ("a == b and c != d", ast.And(cmp("==", A, B), cmp("!=", C, D))),
        ("a < b or c >= d", ast.Or(cmp("<", A, B), cmp(">=", C, D))),
        ("a not in [1, 2]", ast.InList(A, ast.ListLit((N1, N2)), negated=True)),
        ("a !~ b", ast.Regex(A, B, negated=True)),
        # comparisons < + -
        ("a + b == c - d", cmp("==", arith("+", A, B), arith("-", C, D))),
        ("a + b in [1]", ast.InList(arith("+", A, B), ast.ListLit((N1,)))),
        ("a + b =~ c", ast.Regex(arith("+", A, B), C)),
        # + - < * /
        ("a + b * c", arith("+", A, arith("*", B, C))),
        ("a * b + c", arith("+", arith("*", A, B), C)),
        ("a - b / c", arith("-", A, arith("/", B, C))),
        # left-associative
        ("a - b - c", arith("-", arith("-", A, B), C)),
        ("a - b + c", arith("+", arith("-", A, B), C)),
        ("a / b / c", arith("/", arith("/", A, B), C)),
        ("a / b * c", arith("*", arith("/", A, B), C)),
        # * / < unary minus
        ("-a * b", arith("*", ast.Neg(A), B)),
        ("a * -b", arith("*", A, ast.Neg(B))),
        ("- -a", ast.Neg(ast.Neg(A))),
        ("-3", ast.Neg(N3)),
        ("a - -3", arith("-", A, ast.Neg(N3))),
        # parentheses override
        ("(a or b) and c", ast.And(ast.Or(A, B), C)),
        ("not (a and b)", ast.Not(ast.And(A, B))),
        ("(a + b) * c", arith("*", arith("+", A, B), C)),
        ("a - (b - c)", arith("-", A, arith("-", B, C))),
        ("-(a + b)", ast.Neg(arith("+", A, B))),
        ("(a == b) == (c == d)", cmp("==", cmp("==", A, B), cmp("==", C, D))),
    ],
)
def test_precedence(text: str, tree: ast.Expr) -> None:
    assert when_of(text) == tree


@pytest.mark.parametrize(
    "text",
    [
        "a == b == c",
        "a < b < c",
        "a != b >= c",
        "a in [1] in [2]",
        "a in [1] == b",
        "a == b in [1]",
        "a =~ b =~ c",
        "a =~ b == c",
        "a not in [1] not in [2]",
    ],
)
def test_comparisons_do_not_chain(text: str) -> None:
    errors = check_rules(f"rule r\n  when {text}\nend\n")
    assert len(errors) == 1
    assert errors[0].line == 2
    assert "expected a clause or 'end'" in errors[0].message


def test_not_a_equals_b_means_not_of_the_comparison() -> None:
    # If `not` bound tighter, `not a == b` would compare a condition with a label: an error.
    frame = labels({"a": "1", "b": "1"}, {"a": "1", "b": "2"}, {})
    assert evaluate("not a == b", frame) == [False, True, False]
    assert evaluate("not a == b", frame) == evaluate("not (a == b)", frame)


# ---------------------------------------------------------------- literals and names


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("42", ast.Number(42)),
        ("0.05", ast.Number(0.05)),
        ("-3", ast.Neg(ast.Number(3))),
        ('"text"', ast.String("text")),
        ("'text'", ast.String("text")),
        (r'"a\"b\\c\nd"', ast.String('a"b\\c\nd')),
        (r'"\d+"', ast.String("\\d+")),
        ("true", ast.Bool(True)),
        ("false", ast.Bool(False)),
        ("500ms", ast.Duration(500)),
        ("30s", ast.Duration(30_000)),
        ("5m", ast.Duration(300_000)),
        ("2h", ast.Duration(7_200_000)),
        ("1d", ast.Duration(86_400_000)),
        ("1h30m", ast.Duration(5_400_000)),
        ("[]", ast.ListLit(())),
        ('["a", 1]', ast.ListLit((ast.String("a"), ast.Number(1)))),
        ("service", ast.Column("service")),
        ("value", ast.Column("value")),
        ("error_rate", ast.Name("error_rate")),
        ("labels.env", ast.Label("env")),
        ('labels["any-key"]', ast.Label("any-key")),
        ("labels['k']", ast.Label("k")),
        ("lower(x)", ast.Call("lower", (ast.Name("x"),))),
        ("count()", ast.Call("count")),
    ],
)
def test_literals_and_names(text: str, node: ast.Expr) -> None:
    assert when_of(f"x == {text}") == cmp("==", ast.Name("x"), node)


def test_clause_words_are_plain_names_inside_expressions() -> None:
    assert when_of('severity == "high" and team == "core" and rule == by') == ast.And(
        ast.And(
            cmp("==", ast.Column("severity"), ast.String("high")),
            cmp("==", ast.Name("team"), ast.String("core")),
        ),
        cmp("==", ast.Name("rule"), ast.Name("by")),
    )


def test_comments_and_newlines_are_free_inside_a_block() -> None:
    text = "rule r # the rule\n  when\n    a == 1 # why\n    and\n    b == 2\n\n\nend\n"
    (block,) = parse(text).blocks
    assert block.when == ast.And(cmp("==", A, N1), cmp("==", B, N2))


def test_a_continuation_line_may_start_with_a_block_word_used_as_a_name() -> None:
    # `rule`, `route` and the others are plain names over alerts; a wrapped `when` can start a
    # line with one without starting a block (DSL.md §1: newlines are free inside a block).
    text = 'route r\n  when severity == "high" or\n    rule in ["a", "b"]\n  notify x\nend\n'
    (block,) = parse(text).blocks
    assert block.when == ast.Or(
        cmp("==", ast.Column("severity"), ast.String("high")),
        ast.InList(ast.Name("rule"), ast.ListLit((ast.String("a"), ast.String("b")))),
    )
    assert check_rules(text) == []


def test_positions_are_left_out_of_equality_but_kept() -> None:
    node = when_of("a ==\n      b")
    assert node == cmp("==", A, B)
    assert isinstance(node, ast.Compare)
    assert (node.left.span.line, node.left.span.column) == (2, 8)
    assert (node.right.span.line, node.right.span.column) == (3, 7)


# ---------------------------------------------------------------- blocks and clauses

EVERY_CLAUSE = """
rule api_error_rate "API error rate {{ value }} on {{ service }}"
  when source == "prometheus" and service in ["api", "gateway"]
   and error_rate > 0.05
  by service, environment
  for 2m
  resolve after 10m
  severity critical
  team platform
  labels runbook = "https://wiki.example/runbooks/api-errors", "on-call" = "yes"
  notify slack_platform, oncall_email
  escalate after 15m to sre_leads
  escalate after 1h to team:infra
end

rule spike
  when kind == "event"
  count() > 3 * prev(count()) within 5m
end

rule quiet
  when source == "heartbeat"
  absent for 10m
  by host
end

rule first_seen
  when kind == "event"
  new within 1d
  by labels.error_class
end

route page "Page the SREs"
  when severity >= "high"
  team sre
  severity critical
  labels routed = "yes"
  notify pagerduty
  escalate after 5m to sre_leads
  continue
end

silence maintenance "Planned maintenance"
  when environment == "staging"
  from 2026-11-24T22:00:00Z
  until "2026-11-25T06:00:00+01:00"
  during mon-fri 22:00-06:00 in "Europe/Berlin"
end

inhibit node_down "A dead node explains its services"
  when severity < "critical"
  while rule == "node_down"
  on host, labels["cluster"]
end

correlate outage "Outage on {{ service }}"
  when severity >= "medium"
  by service
  within 10m
end
"""


def test_every_block_kind_and_clause() -> None:
    tree = parse(EVERY_CLAUSE)
    rule, spike, quiet, first, route, silence, inhibit, correlate = tree.blocks
    assert rule == ast.RuleBlock(
        id=ast.Ident("api_error_rate"),
        title=ast.String("API error rate {{ value }} on {{ service }}"),
        when=ast.And(
            ast.And(
                cmp("==", ast.Column("source"), ast.String("prometheus")),
                ast.InList(
                    ast.Column("service"),
                    ast.ListLit((ast.String("api"), ast.String("gateway"))),
                ),
            ),
            cmp(">", ast.Name("error_rate"), ast.Number(0.05)),
        ),
        by=(ast.Column("service"), ast.Column("environment")),
        hold=ast.Duration(120_000),
        resolve_after=ast.Duration(600_000),
        severity=ast.Ident("critical"),
        team=ast.Ident("platform"),
        labels=(
            ast.LabelSet("runbook", ast.String("https://wiki.example/runbooks/api-errors")),
            ast.LabelSet("on-call", ast.String("yes")),
        ),
        notify=(ast.Ident("slack_platform"), ast.Ident("oncall_email")),
        escalate=(
            ast.Escalation(ast.Duration(900_000), ast.Ident("sre_leads")),
            ast.Escalation(ast.Duration(3_600_000), ast.Ident("team:infra")),
        ),
    )
    assert spike.window == ast.Window(
        ast.Call("count"),
        ">",
        arith("*", ast.Number(3), ast.Call("prev", (ast.Call("count"),))),
        ast.Duration(300_000),
    )
    assert (quiet.absent, quiet.by) == (ast.Duration(600_000), (ast.Column("host"),))
    assert (first.new, first.by) == (ast.Duration(86_400_000), (ast.Label("error_class"),))
    assert route == ast.RouteBlock(
        id=ast.Ident("page"),
        title=ast.String("Page the SREs"),
        when=cmp(">=", ast.Column("severity"), ast.String("high")),
        team=ast.Ident("sre"),
        severity=ast.Ident("critical"),
        labels=(ast.LabelSet("routed", ast.String("yes")),),
        notify=(ast.Ident("pagerduty"),),
        escalate=(ast.Escalation(ast.Duration(300_000), ast.Ident("sre_leads")),),
        is_continue=True,
    )
    assert silence == ast.SilenceBlock(
        id=ast.Ident("maintenance"),
        title=ast.String("Planned maintenance"),
        when=cmp("==", ast.Column("environment"), ast.String("staging")),
        starts=ast.Instant(datetime(2026, 11, 24, 22, tzinfo=UTC)),
        ends=ast.Instant(datetime(2026, 11, 25, 5, tzinfo=UTC)),
        during=ast.During("mon-fri", "22:00-06:00", "Europe/Berlin"),
    )
    assert inhibit == ast.InhibitBlock(
        id=ast.Ident("node_down"),
        title=ast.String("A dead node explains its services"),
        when=cmp("<", ast.Column("severity"), ast.String("critical")),
        while_=cmp("==", ast.Name("rule"), ast.String("node_down")),
        on=(ast.Column("host"), ast.Label("cluster")),
    )
    assert correlate == ast.CorrelateBlock(
        id=ast.Ident("outage"),
        title=ast.String("Outage on {{ service }}"),
        when=cmp(">=", ast.Column("severity"), ast.String("medium")),
        by=(ast.Column("service"),),
        within=ast.Duration(600_000),
    )
    assert check_rules(EVERY_CLAUSE) == []


def test_clauses_come_in_any_order() -> None:
    one = parse("rule r\n  when a == 1\n  severity high\n  by host\n  for 1m\nend\n")
    other = parse("rule r\n  for 1m\n  by host\n  severity high\n  when a == 1\nend\n")
    assert one == other


def test_a_whole_block_may_sit_on_one_line() -> None:
    assert parse("rule r when a == 1 by host end") == parse("rule r\n  when a == 1\n  by host\nend")


def test_parse_raises_every_error_at_once() -> None:
    text = "rule r\n  when a == \nend\nrule s\n  when b = 1\nend\n"
    with pytest.raises(DslErrors) as caught:
        parse(text, "x.klx")
    assert [(e.line, e.column) for e in caught.value.errors] == [(3, 1), (5, 10)]
    assert str(caught.value).count("x.klx:") == 2


def test_an_empty_file_and_a_file_of_comments_have_no_blocks() -> None:
    assert parse("").blocks == ()
    assert parse("# nothing here\n\n# yet\n").blocks == ()
    assert check_rules("# nothing here\n") == []


@pytest.mark.parametrize(
    "instant", ["0999-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]
)
def test_timestamps_at_the_ends_of_the_calendar_print_back(instant: str) -> None:
    text = f"silence s\n  when true\n  from {instant}\nend\n"
    assert print_rules(parse(text)) == text


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_a_timestamp_outside_the_calendar_in_utc_is_an_error(instant: str) -> None:
    (err,) = check_rules(f"silence s\n  when true\n  from {instant}\nend\n")
    assert (err.line, err.column) == (3, 8)
    assert "not an RFC 3339 timestamp" in err.message


def test_load_rules_compiles_a_good_file_once() -> None:
    compiled = load_rules(EVERY_CLAUSE, "every.klx")
    assert [r.rule_id for r in compiled.rules] == ["api_error_rate", "spike", "quiet", "first_seen"]
    assert [r.route_id for r in compiled.routes] == ["page"]
    assert compiled.source == parse(EVERY_CLAUSE)
