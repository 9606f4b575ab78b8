"""Property: every syntax tree prints to text that parses back to the same tree (STYLE.md §4)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from dsl import ast, parse, print_rules
from dsl.printer import print_expr
from tests.dsl import strategies

ROUND_TRIP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.hypothesis
@ROUND_TRIP
@given(strategies.rules_files)
def test_printed_files_parse_back_to_the_same_tree(tree: ast.RulesFile) -> None:
    text = print_rules(tree)
    assert parse(text) == tree
    assert print_rules(parse(text)) == text


@pytest.mark.hypothesis
@ROUND_TRIP
@given(strategies.exprs)
def test_printed_expressions_parse_back_to_the_same_tree(expr: ast.Expr) -> None:
    text = print_rules(ast.RulesFile((ast.RuleBlock(ast.Ident("r"), None, expr),)))
    (block,) = parse(text).blocks
    assert block.when == expr, print_expr(expr)
