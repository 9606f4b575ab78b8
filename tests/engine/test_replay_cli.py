"""`klaxon replay` as a command (DSL.md §7): bad lines, blank lines, `--until` and stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KLAXON = [str(Path(sys.executable).with_name("klaxon"))]
if not Path(KLAXON[0]).exists():  # pragma: no cover - running without the console script
    KLAXON = [sys.executable, "-c", "from engine.cli import main; main()"]

RULES = """
rule down "Down {{ host }}" when title == "down" by host severity high end
rule quiet when title == "beat" absent for 1m by host end
"""
GOOD = [
    '{"ts": "2026-01-01T00:00:00Z", "title": "down", "host": "a"}',
    '{"ts": "2026-01-01T00:00:10Z", "title": "beat", "host": "b"}',
    '{"ts": "2026-01-01T00:00:20Z", "title": "down", "host": "a", "status": "resolved"}',
]


def klaxon(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*KLAXON, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.klx"
    path.write_text(RULES)
    return path


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"ts": "2026-01-01T00:00:30Z", "title": ', "not JSON"),
        ('{"ts": "yesterday", "title": "down"}', "ts"),
        ('{"ts": "2026-01-01T00:00:30Z", "severity": "urgent"}', "severity"),
    ],
    ids=["json", "ts", "severity"],
)
def test_a_bad_line_exits_1_naming_it_and_prints_nothing(
    rules: Path, tmp_path: Path, bad: str, reason: str
) -> None:
    events = tmp_path / "events.jsonl"
    # Line 5, in the third batch of 2: the first batches have transitions, none may be printed.
    events.write_text("\n".join([*GOOD, "", bad, GOOD[0]]) + "\n")
    p = klaxon("replay", "--rules", str(rules), "--events", str(events), "--batch-size", "2")
    assert p.returncode == 1
    assert p.stdout == ""
    assert "line 5" in p.stderr
    assert reason in p.stderr


def test_blank_lines_are_skipped_and_until_lets_timers_fall_due(
    rules: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n\n".join(GOOD) + "\n\n   \n")
    p = klaxon("replay", "--rules", str(rules), "--events", str(events), "--batch-size", "1")
    assert p.returncode == 0, p.stderr
    got = [(x["at"], x["rule"], x["transition"]) for x in lines(p.stdout)]
    assert got == [
        ("2026-01-01T00:00:00Z", "down", "fired"),
        ("2026-01-01T00:00:20Z", "down", "resolved"),
    ]
    p = klaxon(
        "replay", "--rules", str(rules), "--events", str(events), "--until", "2026-01-01T00:01:10Z"
    )
    assert p.returncode == 0, p.stderr
    assert [(x["at"], x["rule"], x["key"]) for x in lines(p.stdout)][-1] == (
        "2026-01-01T00:01:10Z",
        "quiet",
        {"host": "b"},
    )


def test_events_from_stdin(rules: Path) -> None:
    p = klaxon("replay", "--rules", str(rules), "--events", "-", stdin="\n".join(GOOD) + "\n")
    assert p.returncode == 0, p.stderr
    first = lines(p.stdout)[0]
    assert first == {
        "at": "2026-01-01T00:00:00Z",
        "rule": "down",
        "transition": "fired",
        "key": {"host": "a"},
        "severity": "high",
        "value": None,
        "muted_by": [],
        "team": None,
        "notify": [],
        "title": "Down a",
    }


def test_lines_read_as_the_api_reads_them(rules: Path, tmp_path: Path) -> None:
    """An epoch `ts`, a numeric-string `value` and a numeric `host`, beside plain lines: the
    same transitions as the plain form of the same events (DSL.md §7)."""
    plain = [
        *GOOD,
        '{"ts": "2026-01-01T00:00:30Z", "title": "down", "host": "7", "value": 1.5}',
    ]
    loose = [
        GOOD[0],
        '{"ts": 1767225610, "title": "beat", "host": "b"}',
        '{"ts": 1767225620000, "title": "down", "host": "a", "status": "resolved"}',
        '{"ts": "2026-01-01T00:00:30Z", "title": "down", "host": 7, "value": "1.5"}',
    ]
    out = []
    for name, events in (("plain", plain), ("loose", loose)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(events) + "\n")
        p = klaxon("replay", "--rules", str(rules), "--events", str(path), "--batch-size", "3")
        assert p.returncode == 0, p.stderr
        out.append(lines(p.stdout))
    assert out[0] == out[1]
    assert [(x["at"], x["key"], x["value"]) for x in out[1]][-1] == (
        "2026-01-01T00:00:30Z",
        {"host": "7"},
        1.5,
    )


def test_a_line_the_api_refuses_is_refused(rules: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(GOOD[0] + '\n{"ts": "2026-01-01T00:00:30Z", "host": true}\n')
    p = klaxon("replay", "--rules", str(rules), "--events", str(events))
    assert p.returncode == 1
    assert p.stdout == ""
    assert "line 2: 'host' must be a string" in p.stderr
