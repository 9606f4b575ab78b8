"""The rule-language conformance cases (DSL.md), run against the real `klaxon` command.

Each folder holds rules.klx and either events.jsonl + expected.jsonl (`klaxon replay` at batch
sizes default, 1 and 2 must print exactly the expected transitions; extra fields are allowed)
or expected_check (a regular expression `klaxon check` must print, exiting 1). An optional
`args` file adds arguments to `klaxon replay`. A new case is a new folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

CASES = Path(__file__).parent
KLAXON = [str(Path(sys.executable).with_name("klaxon"))]
if not Path(KLAXON[0]).exists():  # pragma: no cover - running without the console script
    KLAXON = [sys.executable, "-c", "from engine.cli import main; main()"]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def same(want: Any, got: Any, path: str = "$") -> str | None:
    """Expected fields must match; extra fields in the output are allowed (as run.py)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object, got {got!r}"
        for k, v in want.items():
            if k not in got:
                return f"{path}.{k}: missing"
            if k in ("at", "opened") and isinstance(v, str):
                if _ts(v) != _ts(got[k]):
                    return f"{path}.{k}: expected {v}, got {got[k]}"
                continue
            if k == "key" and set(v) != set(got[k] or {}):
                return f"{path}.key: expected fields {sorted(v)}, got {sorted(got[k] or {})}"
            err = same(v, got[k], f"{path}.{k}")
            if err:
                return err
        return None
    if isinstance(want, int | float) and not isinstance(want, bool):
        ok = isinstance(got, int | float) and not isinstance(got, bool)
        if not ok or not math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9):
            return f"{path}: expected {want}, got {got!r}"
        return None
    return None if want == got else f"{path}: expected {want!r}, got {got!r}"


def klaxon(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*KLAXON, *args], capture_output=True, text=True, timeout=120, env=env)


CASE_DIRS = sorted(d for d in CASES.iterdir() if (d / "rules.klx").is_file())


@pytest.mark.parametrize("case", CASE_DIRS, ids=[d.name for d in CASE_DIRS])
def test_case(case: Path) -> None:
    rules = case / "rules.klx"
    check_file = case / "expected_check"
    if check_file.exists():
        pattern = check_file.read_text().strip()
        p = klaxon("check", str(rules))
        assert p.returncode == 1, p.stdout + p.stderr
        assert re.search(pattern, p.stdout + p.stderr), p.stdout + p.stderr
        return
    p = klaxon("check", str(rules))
    assert p.returncode == 0, p.stdout + p.stderr
    want = [
        json.loads(line)
        for line in (case / "expected.jsonl").read_text().splitlines()
        if line.strip()
    ]
    extra = shlex.split((case / "args").read_text()) if (case / "args").exists() else []
    for batch in (None, 1, 2):
        cmd = ["replay", "--rules", str(rules), "--events", str(case / "events.jsonl"), *extra]
        if batch:
            cmd += ["--batch-size", str(batch)]
        p = klaxon(*cmd)
        label = f"batch size {batch or 'default'}"
        assert p.returncode == 0, f"{label}: {p.stderr[-2000:]}"
        got = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        assert len(got) == len(want), (
            f"{label}: {len(got)} transitions, expected {len(want)}\n{p.stdout}"
        )
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            err = same(w, g)
            assert err is None, f"{label} line {i + 1}: {err}\nexpected: {w}\ngot:      {g}"
