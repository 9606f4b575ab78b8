"""Exports (CSV, Parquet, JSON), the PDF report and scheduled reports sent to a real SMTP server."""

from __future__ import annotations

import csv
import email
import io
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from aiosmtpd.controller import Controller

from engine.analytics.export import alert_batches, table_of, write
from engine.analytics.filters import Filters
from engine.analytics.schedules import latest_run, run_due_reports, save_schedule, start_report_loop
from engine.auth.principal import SYSTEM
from engine.notify.channels import add_channel


@pytest.fixture
def alerts(store):
    at, a = store.at, store.alert
    store.alerts(
        [
            a(
                1,
                at(0, 10),
                title="=HYPERLINK(evil)",
                acknowledged_at=at(0, 10, 1),
                acknowledged_by="alice@x",
            ),
            a(
                2,
                at(0, 11),
                title="disk full",
                severity="critical",
                resolved_at=at(0, 12),
                resolved_by="klaxon",
                resolution="auto",
            ),
            a(3, at(2, 9), title="späte Warnung", team="payments"),
        ]
    )


def test_alerts_as_csv_json_and_parquet_carry_the_same_rows(api, alerts) -> None:
    r = api.get("/api/v1/exports/alerts", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["id"] for x in rows] == ["1", "2", "3"]
    for column in (
        "id",
        "title",
        "severity",
        "status",
        "source",
        "service",
        "team",
        "rule",
        "created_at",
        "acknowledged_at",
        "resolved_at",
    ):
        assert column in rows[0]
    assert rows[0]["title"] == "'=HYPERLINK(evil)"  # a spreadsheet will not run it
    assert (rows[0]["created_at"], rows[0]["acknowledged_at"], rows[0]["resolved_at"]) == (
        "2026-03-02T10:00:00Z",
        "2026-03-02T10:01:00Z",
        "",
    )
    as_json = orjson.loads(api.get("/api/v1/exports/alerts", params={"format": "json"}).content)
    assert [x["title"] for x in as_json] == ["=HYPERLINK(evil)", "disk full", "späte Warnung"]
    assert as_json[1]["resolved_at"] == "2026-03-02T12:00:00Z"
    table = pq.read_table(
        io.BytesIO(api.get("/api/v1/exports/alerts", params={"format": "parquet"}).content)
    )
    assert table.num_rows == 3
    assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert table.column("created_at")[0].as_py() == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_alert_exports_take_the_filters(api, alerts, store) -> None:
    body = orjson.loads(
        api.get("/api/v1/exports/alerts", params={"format": "json", "team": "payments"}).content
    )
    assert [x["id"] for x in body] == [3]
    body = orjson.loads(
        api.get(
            "/api/v1/exports/alerts",
            params={
                "format": "json",
                "from": store.at(0, 10, 30).isoformat(),
                "to": store.at(1).isoformat(),
            },
        ).content
    )
    assert [x["id"] for x in body] == [2]
    empty = api.get("/api/v1/exports/alerts", params={"format": "json", "rule": "nope"})
    assert orjson.loads(empty.content) == []
    assert (
        pq.read_table(
            io.BytesIO(
                api.get(
                    "/api/v1/exports/alerts", params={"format": "parquet", "rule": "nope"}
                ).content
            )
        ).num_rows
        == 0
    )


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/exports/alerts", {"format": "xlsx"}, "format"),
        ("/api/v1/exports/alerts", {"severity": "urgent"}, "severity"),
        ("/api/v1/exports/analytics", {"metric": "mood"}, "metric"),
        ("/api/v1/exports/analytics", {"metric": "noise", "table": "people"}, "table"),
        (
            "/api/v1/exports/audit",
            {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
            "from",
        ),
    ],
)
def test_bad_export_requests_are_422_naming_the_field(api, path, params, field) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_an_analytics_table_and_the_audit_log_export(api, alerts, store) -> None:
    r = api.get(
        "/api/v1/exports/analytics",
        params={
            "metric": "mtta",
            "format": "csv",
            "from": store.T0.isoformat(),
            "to": store.at(7).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    assert list(csv.DictReader(io.StringIO(r.text))) == [
        {
            "bucket": "2026-03-02T00:00:00Z",
            "count": "1",
            "mean": "60.0",
            "median": "60.0",
            "p90": "60.0",
        }
    ]
    delivery = api.get("/api/v1/exports/analytics", params={"metric": "delivery", "format": "json"})
    assert (delivery.status_code, orjson.loads(delivery.content)) == (200, [])
    api.put("/api/v1/analytics/sla/targets", json={"critical": {"ack_s": 60}})
    audit = pq.read_table(
        io.BytesIO(api.get("/api/v1/exports/audit", params={"format": "parquet"}).content)
    )
    assert "analytics.sla.update" in audit.column("action").to_pylist()


def test_table_of_flattens_nested_answers() -> None:
    frame = table_of(
        [{"channel": "slack", "by_status": {"sent": 3}, "latency_s": {"mean": 1.5}, "tags": ["a"]}]
    )
    assert frame.columns == ["channel", "by_status.sent", "latency_s.mean", "tags"]
    assert frame.row(0) == ("slack", 3, 1.5, '["a"]')


def test_write_streams_to_a_file_and_counts_rows(wh, alerts, tmp_path) -> None:
    everything = Filters.of(
        start=datetime(1970, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC)
    )
    out = tmp_path / "alerts.parquet"
    assert write(alert_batches(wh, everything, batch_rows=2), "parquet", out) == 3
    assert pq.read_table(out).num_rows == 3
    assert not list(tmp_path.glob(".*.part"))


def test_the_pdf_report(api, alerts, store) -> None:
    r = api.get(
        "/api/v1/reports/pdf", params={"from": store.T0.isoformat(), "to": store.at(7).isoformat()}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert b"/Type /Page" in r.content


# ---------------------------------------------------------------- scheduled reports


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"mailto://127.0.0.1:{port}?from=klaxon@example.com&to=boss@example.com"  # type: ignore[attr-defined]
    yield inbox
    controller.stop()


def test_latest_run_follows_the_schedule_time_zone_and_weekday() -> None:
    daily = {"every": "daily", "at": "08:00", "tz": "Europe/Berlin", "weekday": None}
    assert latest_run(daily, datetime(2026, 3, 3, 6, 59, tzinfo=UTC)) == datetime(
        2026, 3, 2, 7, 0, tzinfo=UTC
    )
    assert latest_run(daily, datetime(2026, 3, 3, 7, 0, tzinfo=UTC)) == datetime(
        2026, 3, 3, 7, 0, tzinfo=UTC
    )
    weekly = {"every": "weekly", "at": "09:30", "tz": "UTC", "weekday": "mon"}
    assert latest_run(weekly, datetime(2026, 3, 8, 12, tzinfo=UTC)) == datetime(
        2026, 3, 2, 9, 30, tzinfo=UTC
    )


@pytest.mark.integration
def test_a_scheduled_report_is_mailed_once_with_the_pdf(api, db, alerts, smtp, tmp_path) -> None:
    with db.connect() as conn:
        add_channel(conn, SYSTEM, "boss_mail", smtp.url)
    bad = api.put(
        "/api/v1/reports/schedules/weekly-ops",
        json={"every": "weekly", "weekday": "mon", "channel": "nope"},
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "channel")
    bad = api.put(
        "/api/v1/reports/schedules/weekly-ops", json={"every": "hourly", "channel": "boss_mail"}
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "every")
    ok = api.put(
        "/api/v1/reports/schedules/weekly-ops",
        json={"every": "weekly", "weekday": "mon", "at": "08:00", "channel": "boss_mail"},
    )
    assert ok.status_code == 200, ok.text
    assert [s["name"] for s in api.get("/api/v1/reports/schedules").json()] == ["weekly-ops"]

    now = datetime(2026, 3, 9, 8, 5, tzinfo=UTC)  # the Monday after the alerts' week
    results = run_due_reports(db, now, data_dir=tmp_path)
    assert [r["sent"] for r in results] == [True], results
    assert results[0]["from"] == "2026-03-02T08:00:00+00:00"
    deadline = time.monotonic() + 5
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    message = smtp.messages[0]
    assert "weekly-ops" in message["Subject"]
    attachments = [p for p in message.walk() if p.get_filename()]
    assert attachments
    assert attachments[0].get_payload(decode=True).startswith(b"%PDF-")
    assert run_due_reports(db, now, data_dir=tmp_path) == []  # already sent for this Monday
    assert api.get("/api/v1/reports/schedules").json()[0]["last_result"]["sent"] is True
    assert api.delete("/api/v1/reports/schedules/weekly-ops").status_code == 200
    assert api.delete("/api/v1/reports/schedules/weekly-ops").status_code == 422


@pytest.mark.integration
def test_the_worker_report_loop_sends_a_due_report_at_start(db, alerts, smtp, tmp_path) -> None:
    with db.connect() as conn:
        add_channel(conn, SYSTEM, "boss_mail", smtp.url)
        save_schedule(
            conn,
            SYSTEM,
            {"name": "daily-ops", "every": "daily", "at": "00:00", "channel": "boss_mail"},
        )
    stop = threading.Event()
    thread = start_report_loop(db, stop, data_dir=tmp_path, every_s=3600)
    try:
        deadline = time.monotonic() + 30
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(smtp.messages) == 1
    assert "daily-ops" in smtp.messages[0]["Subject"]
    assert list((tmp_path / "reports").glob("daily-ops-*.pdf"))
