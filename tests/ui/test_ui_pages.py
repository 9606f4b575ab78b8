"""Every page opens through the entry script for every role that may see it, on the demo store,
without an exception or an error; roles see only their pages; pages and app/ import no SQL,
Apprise or Lark. (Load times are measured in a real browser by test_browser.py, not here.)"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from engine.auth.principal import ROLE_PERMISSIONS, ROLES

ROOT = Path(__file__).resolve().parents[2]
PAGES = (
    "overview",
    "triage",
    "incidents",
    "silences",
    "rules",
    "notifications",
    "analytics",
    "admin",
    "account",
)
# The least and the most privileged role on every page they see, plus the pages the roles in
# between see differently (the action tests drive operator and manager through their pages).
CASES = [(role, page) for role in ("viewer", "admin") for page in PAGES]
CASES += [("manager", "admin"), ("operator", "notifications"), ("operator", "account")]


def _visible(role: str) -> set[str]:
    from app.main import SECTIONS

    can = ROLE_PERMISSIONS[role]
    return {
        url
        for entries in SECTIONS.values()
        for _f, _t, _i, url, needs in entries
        if not needs or can & set(needs)
    }


def _problems(at: Any) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


@pytest.mark.parametrize(("role", "page"), [c for c in CASES if c[1] in _visible(c[0])])
def test_a_page_opens_without_errors(signed_in: Any, page: str, role: str) -> None:
    at = signed_in(role, page=page)  # a fresh session: login, then the page's first, cold run
    assert not _problems(at), _problems(at)
    assert at.title, f"{page} has no title"
    at.run()  # a second run (cached reads, kept widget state) is clean too
    assert not _problems(at), _problems(at)


def test_each_role_sees_its_pages() -> None:
    assert set(ROLES) == {"viewer", "operator", "manager", "admin"}
    assert _visible("admin") == set(PAGES)
    assert _visible("viewer") == set(PAGES) - {"admin"}
    assert "admin" in _visible("manager")


def test_a_hidden_page_is_not_offered(signed_in: Any, page_path: Any) -> None:
    from streamlit.testing.v1.util import patch_config_options  # noqa: F401 - AppTest is importable

    at = signed_in("viewer")
    with pytest.raises(Exception, match="admin"):
        at.switch_page(page_path("admin")).run()


def test_signed_out_there_is_only_the_login(demo_url: str, texts: Any) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=30).run()
    assert not at.exception
    assert at.text_input(key="login.email")
    assert "Overview" not in [t.value for t in at.title]


BANNED = ("sqlalchemy", "apprise", "lark")


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("app/*.py")]), ids=lambda p: p.name
)
def test_the_web_app_imports_no_sql_apprise_or_lark(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"
