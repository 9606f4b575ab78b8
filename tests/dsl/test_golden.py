"""Golden files: golden/NAME.klx with NAME.printed (`klaxon fmt`) and NAME.check (`klaxon check`).

`pytest --update-golden` rewrites them from the current output; review the diff like code.
A file that does not parse has no .printed; every file has a .check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import DslErrors, check_rules, parse, print_rules

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.klx"))
IDENTITY = GOLDEN / "identity.klx"


def display_path(path: Path) -> str:
    """The path as `klaxon check` shows it when run from the repository root."""
    return f"tests/dsl/golden/{path.name}"


def check_output(path: Path) -> str:
    """What `klaxon check PATH` prints on stdout: every error with its caret, or `ok: N rules`."""
    text = path.read_text(encoding="utf-8")
    found = check_rules(text, display_path(path))
    if found:
        return "".join(f"{err}\n" for err in found)
    rules = sum(1 for block in parse(text).blocks if block.kind == "rule")
    return f"ok: {rules} rule{'s' if rules != 1 else ''}\n"


def printed_output(path: Path) -> str | None:
    try:
        return print_rules(parse(path.read_text(encoding="utf-8"), display_path(path)))
    except DslErrors:
        return None


def compare(actual: str | None, golden: Path, update: bool) -> None:
    if update:
        if actual is None:
            golden.unlink(missing_ok=True)
        else:
            golden.write_text(actual, encoding="utf-8")
        return
    if actual is None:
        assert not golden.exists(), f"{golden.name} is stale: the file no longer parses"
        return
    assert golden.exists(), f"{golden.name} is missing: run pytest --update-golden"
    assert actual == golden.read_text(encoding="utf-8")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def test_there_are_golden_files() -> None:
    assert IDENTITY in FILES
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_printed(path: Path, update_golden: bool) -> None:
    compare(printed_output(path), path.with_suffix(".printed"), update_golden)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_check(path: Path, update_golden: bool) -> None:
    compare(check_output(path), path.with_suffix(".check"), update_golden)


PARSING = [p for p in FILES if p.with_suffix(".printed").exists()]


@pytest.mark.parametrize("path", PARSING, ids=[p.stem for p in PARSING])
def test_printed_form_is_a_fixed_point_with_the_same_tree(path: Path) -> None:
    printed = printed_output(path)
    assert printed is not None
    original = parse(path.read_text(encoding="utf-8"))
    assert parse(printed) == original
    assert print_rules(parse(printed)) == printed
    assert [b.notes for b in parse(printed).blocks] == [b.notes for b in original.blocks]


def test_identity_file_prints_unchanged() -> None:
    text = IDENTITY.read_text(encoding="utf-8")
    assert print_rules(parse(text)) == text
    assert check_rules(text) == []


def test_every_golden_klx_is_used() -> None:
    # Every .printed and .check belongs to a .klx: a renamed input leaves no orphan behind.
    outputs = sorted(GOLDEN.glob("*.printed")) + sorted(GOLDEN.glob("*.check"))
    assert {p.with_suffix(".klx") for p in outputs} <= set(FILES)


def test_klaxon_check_prints_the_golden_check_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The .check files are what the real command prints (run from the repository root).
    from engine.cli import main

    monkeypatch.chdir(GOLDEN.parent.parent.parent)
    for path in FILES:
        with pytest.raises(SystemExit) as done:
            main(["check", display_path(path)])
        out = capsys.readouterr().out
        assert out == path.with_suffix(".check").read_text(encoding="utf-8"), path.name
        assert done.value.code == (0 if out.startswith("ok: ") else 1)
