"""Rules: errors show as the author types and block saving; a good edit is saved as a new
version with its diff in the history; a backtest runs with progress and compares."""

from __future__ import annotations

import io
from typing import Any

import orjson
import polars as pl

from engine.store import rules as rules_store

BROKEN = 'rule disk_full "Disk full"\n  when kind == "alert" and\nend\n'
SEVERITY_TYPO = 'rule typo "Typo"\n  when kind == "alert"\n  severity critcal\nend\n'


def _version(db: Any) -> int:
    with db.read() as conn:
        current = rules_store.current(conn)
    assert current is not None
    return current.version


def test_a_rule_with_an_error_shows_it_and_is_not_saved(
    signed_in: Any, demo_db: Any, texts: Any
) -> None:
    before = _version(demo_db)
    at = signed_in("manager", page="rules")
    stored = at.text_area(key="rules.editor").value
    at.text_area(key="rules.editor").input(stored + "\n" + SEVERITY_TYPO).run()
    shown = texts(at)
    line = stored.count("\n") + 1 + 3  # the severity line of the appended rule
    assert f"Line {line}, column 12" in shown
    assert "unknown severity" in shown.lower()
    assert "critical" in shown
    carets = [c.value for c in at.code if "^" in c.value]
    assert carets
    assert "severity critcal" in carets[0]
    assert at.button(key="rules.save").disabled
    assert _version(demo_db) == before
    assert not at.exception


def test_a_syntax_error_is_located_too(signed_in: Any) -> None:
    at = signed_in("manager", page="rules")
    at.text_area(key="rules.editor").input(BROKEN).run()
    assert at.button(key="rules.save").disabled
    assert any("Line 3, column 1" in m.value for m in at.markdown)


def test_a_good_edit_is_saved_and_diffed(signed_in: Any, demo_db: Any, texts: Any) -> None:
    before = _version(demo_db)
    at = signed_in("manager", page="rules")
    stored = at.text_area(key="rules.editor").value
    extra = (
        'rule quiet_disk "Disk on {{ host }}"\n'
        '  when kind == "alert" and title == "DiskAlmostFull"\n'
        "  severity low\nend\n"
    )
    at.text_area(key="rules.editor").input(stored.rstrip() + "\n\n" + extra).run()
    assert "No errors" in texts(at)
    at.text_input(key="rules.comment").input("quieter disks").run()
    at.button(key="rules.save").click().run()
    assert not at.exception
    assert not at.error
    assert _version(demo_db) == before + 1
    at.session_state["rules.tab"] = "History"
    at.run()
    diffs = [c.value for c in at.code if c.language == "diff"]
    assert diffs
    assert "+rule quiet_disk" in diffs[0]


def test_a_viewer_cannot_edit(signed_in: Any) -> None:
    at = signed_in("viewer", page="rules")
    assert at.text_area(key="rules.editor").disabled
    assert "rules.save" not in {b.key for b in at.button}


def test_a_backtest_compares_the_edit_with_the_current_rules(
    signed_in: Any, downloads: dict[str, bytes]
) -> None:
    at = signed_in("manager", page="rules")
    stored = at.text_area(key="rules.editor").value
    at.text_area(key="rules.editor").input(
        stored.replace(
            'rule source "{{ title }}"', 'rule source "{{ title }}"\n  severity critical', 1
        )
    ).run()
    at.session_state["rules.tab"] = "Backtest"
    at.run()
    at.button(key="rules.backtest").click().run(timeout=120)
    assert not at.exception
    assert not at.error
    labels = {m.label: m.value for m in at.metric}
    assert "Alerts (these rules)" in labels
    assert "Alerts (current rules)" in labels
    assert int(labels["Alerts (these rules)"].replace(",", "")) > 0
    # alerts over time: a chart of both rule sets per day, and its rows as CSV
    charts = [orjson.loads(c.proto.spec) for c in at.get("plotly_chart")]
    over_time = [c for c in charts if "per day" in c["layout"]["title"]["text"]]
    assert len(over_time) == 1
    traces = {t["name"]: t for t in over_time[0]["data"]}
    assert set(traces) == {"these rules", "current rules"}
    assert len(traces["these rules"]["x"]) == 8  # the default period: seven days and today
    assert sum(traces["these rules"]["y"]) == int(labels["Alerts (these rules)"].replace(",", ""))
    assert sum(traces["current rules"]["y"]) == int(
        labels["Alerts (current rules)"].replace(",", "")
    )
    names = [
        n for n in downloads if n.startswith("klaxon-backtest-per-day-") and n.endswith(".csv")
    ]
    assert names
    rows = pl.read_csv(io.BytesIO(downloads[names[-1]]))
    assert rows.columns == ["at", "alerts", "current_alerts", "alerts_change"]
    assert rows["alerts"].to_list() == traces["these rules"]["y"]
