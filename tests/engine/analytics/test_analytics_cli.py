"""`klaxon export`, `klaxon backtest` and `klaxon report` against a real store (SQLite)."""

from __future__ import annotations

import csv

import orjson
import polars as pl
import pytest

from engine.cli import main
from engine.schema import EVENT_SCHEMA
from engine.store import rules as rules_store
from engine.store.db import Database
from engine.store.events import insert_events

RULES = """rule disk "Disk full on {{ host }}"
  when title == "disk"
  by host
end
"""


@pytest.fixture
def cli_db(sqlite_url, monkeypatch):
    monkeypatch.setenv("KLAXON_DATABASE_URL", sqlite_url)
    db = Database(sqlite_url)
    yield db
    db.dispose()


def run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return int(exit_.value.code or 0)


@pytest.fixture
def seeded(cli_db, store_factory):
    store = store_factory(cli_db)
    at, a = store.at, store.alert
    store.alerts([a(1, at(0, 10), title="first"), a(2, at(1, 10), title="second", team="payments")])
    rows = [
        {
            "event_id": f"e{i}",
            "ts": at(0, 0, i),
            "received_at": at(0, 0, i),
            "kind": "event",
            "source": "app",
            "source_id": "",
            "fingerprint": "f",
            "title": "disk",
            "description": "",
            "severity": "high",
            "status": "firing",
            "service": "api",
            "environment": "",
            "host": f"h{i % 3}",
            "value": None,
            "labels": {},
            "raw": None,
        }
        for i in range(6)
    ]
    with cli_db.connect() as conn:
        insert_events(conn, pl.DataFrame(rows, schema=EVENT_SCHEMA))
        rules_store.save(conn, RULES, actor="tests")
    return store


def test_export_alerts_to_a_csv_file(seeded, tmp_path, capsys) -> None:
    out = tmp_path / "alerts.csv"
    assert (
        run("export", "alerts", "--format", "csv", "--output", str(out), "--team", "payments") == 0
    )
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["title"] for r in rows] == ["second"]
    assert "wrote 1 rows" in capsys.readouterr().err


def test_export_analytics_as_json_to_stdout(seeded, capsys) -> None:
    assert (
        run(
            "export",
            "analytics",
            "--metric",
            "volume",
            "--table",
            "totals",
            "--format",
            "json",
            "--output",
            "-",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-09T00:00:00Z",
        )
        == 0
    )
    assert orjson.loads(capsys.readouterr().out) == [
        {"source": "prometheus", "alerts": 2, "occurrences": 2}
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "alerts", "--output", "x.csv", "--severity", "urgent"], "--severity"),
        (
            ["export", "alerts", "--output", "x.csv", "--from", "soon"],
            "--from: not an RFC 3339 time",
        ),
        (["export", "analytics", "--output", "x.csv"], "--metric"),
        (["export", "alerts", "--output", "/no/such/dir/x.csv"], "--output: no such folder"),
        (
            [
                "backtest",
                "--rules",
                "missing.klx",
                "--from",
                "2026-03-02T00:00:00Z",
                "--to",
                "2026-03-03T00:00:00Z",
            ],
            "no such file",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(cli_db, argv, message, capsys) -> None:
    assert run(*argv) == 2
    assert message in capsys.readouterr().err


def test_backtest_prints_a_table_and_json(seeded, tmp_path, capsys) -> None:
    rules = tmp_path / "rules.klx"
    rules.write_text(RULES + '\nrule all_app "App"\n  when source == "app"\nend\n')
    assert (
        run(
            "backtest",
            "--rules",
            str(rules),
            "--from",
            "2026-03-02T00:00:00Z",
            "--to",
            "2026-03-03T00:00:00Z",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "6 events" in out
    lines = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("disk", "all_app", "total"))
    }
    assert lines["disk"][1:4] == ["3", "3", "0"]
    assert lines["all_app"][1:4] == ["1", "0", "+1"]
    assert (
        run(
            "backtest",
            "--rules",
            str(rules),
            "--from",
            "2026-03-02T00:00:00Z",
            "--to",
            "2026-03-03T00:00:00Z",
            "--json",
        )
        == 0
    )
    assert orjson.loads(capsys.readouterr().out)["totals"]["alerts"] == 4


def test_backtest_of_broken_rules_shows_the_caret_and_exits_2(cli_db, tmp_path, capsys) -> None:
    rules = tmp_path / "bad.klx"
    rules.write_text('rule x\n  when severity == "urgent"\nend\n')
    assert (
        run(
            "backtest",
            "--rules",
            str(rules),
            "--from",
            "2026-03-02T00:00:00Z",
            "--to",
            "2026-03-03T00:00:00Z",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{rules}:2:" in err
    assert "^" in err


def test_report_writes_a_pdf(seeded, tmp_path) -> None:
    out = tmp_path / "report.pdf"
    assert (
        run(
            "report",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-09T00:00:00Z",
            "--output",
            str(out),
        )
        == 0
    )
    assert out.read_bytes().startswith(b"%PDF-")


def test_analytics_prints_an_answer_as_json_and_as_tables(seeded, capsys) -> None:
    period = ["--from", "2026-03-01T00:00:00Z", "--to", "2026-03-09T00:00:00Z"]
    assert run("analytics", "volume", "--by", "team", "--json", *period) == 0
    answer = orjson.loads(capsys.readouterr().out)
    assert answer["totals"] == [
        {"team": "payments", "alerts": 1, "occurrences": 1},
        {"team": "platform", "alerts": 1, "occurrences": 1},
    ]
    assert run("analytics", "volume", "--team", "payments", *period) == 0
    out = capsys.readouterr().out
    assert "alerts: 1" in out
    assert "totals (1 rows)" in out


def test_analytics_refresh_and_reports(seeded, capsys) -> None:
    assert run("analytics", "refresh") == 0
    out = capsys.readouterr().out
    assert "alerts: 2 rows" in out
    assert "events: 6 rows" in out
    assert run("analytics", "refresh", "--rebuild") == 0
    assert "alerts: 2 rows" in capsys.readouterr().out
    assert run("analytics", "reports") == 0
    assert "no scheduled report is due" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["analytics", "mttr", "--by", "colour"], "--by: cannot group by 'colour'"),
        (["analytics", "noise", "--by", "team"], "--by: noise cannot be grouped"),
        (["analytics", "mtta", "--bucket", "month"], "--bucket: unknown bucket 'month'"),
        (
            ["analytics", "sla", "--from", "2026-03-09T00:00:00Z", "--to", "2026-03-01T00:00:00Z"],
            "--from",
        ),
    ],
)
def test_bad_analytics_arguments_exit_2_naming_the_flag(cli_db, argv, message, capsys) -> None:
    assert run(*argv) == 2
    assert message in capsys.readouterr().err
