"""The documentation names everything a user can set, call or write, so it cannot drift silently.

Each test reads the code's own registry (settings, CLI commands, API routes, rule-language
clauses, functions and aggregates) and fails with the names the docs do not mention.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from dsl.functions import AGGREGATES, FUNCTIONS
from dsl.parser import CLAUSES
from engine.cli import _COMMANDS, build_parser
from engine.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DSL = (ROOT / "docs" / "DSL.md").read_text(encoding="utf-8")
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    names = [f"KLAXON_{f.metadata['env']}" for f in fields(Settings)]
    assert names, "Settings lost its fields"
    assert [n for n in names if f"`{n}`" not in README] == []


def test_the_readme_names_no_setting_that_does_not_exist() -> None:
    known = {f"KLAXON_{f.metadata['env']}" for f in fields(Settings)}
    mentioned = set(re.findall(r"`(KLAXON_[A-Z_]+)`", README))
    test_only = {"KLAXON_TEST_DATABASE_URL", "KLAXON_TEST_REDIS_URL"}
    assert mentioned - known - test_only == set()


def test_every_command_is_in_the_readme() -> None:
    build_parser()  # registers every command
    assert sorted(c for c in _COMMANDS if f"`klaxon {c}" not in README) == []


def test_every_api_route_is_in_docs_api() -> None:
    from engine.api.app import create_app
    from engine.store.db import Database

    paths = create_app(db=Database("sqlite://")).openapi()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert len(routes) > 20
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/\S*)`", API))
    assert sorted(routes - documented) == []
    assert sorted(documented - routes) == [], "docs/api.md lists routes that do not exist"


def test_every_clause_function_and_aggregate_is_in_the_language_reference() -> None:
    words = {kw for kws in CLAUSES.values() for kw in kws} | set(CLAUSES)
    names = set(FUNCTIONS) | set(AGGREGATES)
    assert [w for w in sorted(words) if not re.search(rf"\b{re.escape(w)}\b", DSL)] == []
    assert [n for n in sorted(names) if f"{n}(" not in DSL] == []
