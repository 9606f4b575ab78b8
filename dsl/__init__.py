"""Klaxon's rule language: text → syntax tree → checked tree → Polars expressions (DSL.md)."""

from dsl.check import check_rules, load_rules, load_rules_file
from dsl.compiler import CompiledRules, compile_rules
from dsl.errors import DslError, DslErrors, RuleSemanticError, RuleSyntaxError
from dsl.parser import parse
from dsl.printer import print_rules

__all__ = [
    "CompiledRules",
    "DslError",
    "DslErrors",
    "RuleSemanticError",
    "RuleSyntaxError",
    "check_rules",
    "compile_rules",
    "load_rules",
    "load_rules_file",
    "parse",
    "print_rules",
]
