"""The audit chain: it verifies, any edit made directly in the database is found and named,
`klaxon audit verify` says which entry; search and export (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import itertools
import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import delete, select, update

from engine.auth import audit
from engine.auth.audit_search import AuditQuery, export, search_audit
from engine.auth.errors import InvalidInputError
from engine.auth.principal import SYSTEM, PermissionDenied, Principal
from engine.cli import main
from engine.store.models import AuditEntry

ALICE = Principal(
    "alice@example.com", kind="user", role="admin", user_id=1, ip="10.1.2.3", user_agent="Firefox"
)


def _fill(db, n: int = 6) -> None:
    with db.connect() as conn:
        for i in range(n):
            audit.record(
                conn,
                ALICE if i % 2 else SYSTEM,
                "alert.acknowledge" if i % 3 else "user.create",
                "alert" if i % 3 else "user",
                i + 1,
                before={"status": "active"},
                after={"status": "acknowledged", "n": i, "f": 1.5},
            )


def test_a_fresh_chain_verifies(db) -> None:
    assert audit.verify(db).ok
    assert audit.verify(db).checked == 0
    _fill(db)
    result = audit.verify(db, chunk=4)  # across chunk boundaries
    assert result.ok
    assert result.checked == 6
    with db.read() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert result.head == rows[-1].hash


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "mallory@example.com"),
        ("action", "alert.resolve"),
        ("ip", "127.0.0.1"),
        ("user_agent", None),
        ("resource_id", "99"),
        ("before", {"status": "resolved"}),
        ("after", None),
        ("at", datetime(2020, 1, 1, tzinfo=UTC)),
        ("hash", "f" * 64),
    ],
)
def test_an_edited_column_is_found_and_named(db, column, value) -> None:
    _fill(db)
    with db.connect() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == 4).values({column: value}))
    result = audit.verify(db)
    assert result.broken_id == 4
    assert result.checked == 3
    assert "changed" in result.reason


def test_a_removed_entry_is_found_at_the_next_one(db) -> None:
    _fill(db)
    with db.connect() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.id == 3))
    result = audit.verify(db)
    assert result.broken_id == 4
    assert "removed" in result.reason


def test_recomputing_a_plain_sha256_does_not_help_a_forger(db) -> None:
    """The chain is keyed: without KLAXON_SECRET_KEY a rewritten entry cannot be re-hashed."""
    import hashlib

    _fill(db, 3)
    with db.read() as conn:
        row = conn.execute(select(AuditEntry).where(AuditEntry.id == 3)).one()
    forged = {**audit.hashed_fields(row), "actor": "mallory@example.com"}
    digest = hashlib.sha256(
        row.prev_hash.encode() + orjson.dumps(forged, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    with db.connect() as conn:
        conn.execute(
            update(AuditEntry)
            .where(AuditEntry.id == 3)
            .values(actor="mallory@example.com", hash=digest)
        )
    assert audit.verify(db).broken_id == 3


def test_klaxon_audit_verify_exits_1_naming_the_entry(db, db_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)
    _fill(db)
    with pytest.raises(SystemExit) as done:
        main(["audit", "verify"])
    assert done.value.code == 0
    assert "ok: 6 entries" in capsys.readouterr().out
    with db.connect() as conn:
        conn.execute(
            update(AuditEntry).where(AuditEntry.id == 2).values(after={"status": "forged"})
        )
    with pytest.raises(SystemExit) as done:
        main(["audit", "verify"])
    assert done.value.code == 1
    assert "entry 2 is broken" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_writers_do_not_fork_the_chain(db) -> None:
    """PostgreSQL serializes chain writers with an advisory lock (SQLite: one writer anyway)."""

    def write() -> None:
        for i in range(15):
            with db.connect() as conn:
                audit.record(conn, SYSTEM, "test.write", "test", i)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = audit.verify(db)
    assert result.ok
    assert result.checked == 60


def test_search_filters_and_sorts(db) -> None:
    _fill(db)
    reader = Principal("mgr@example.com", kind="user", role="manager", user_id=2)
    assert len(search_audit(db, reader)) == 6
    assert {
        e["actor"] for e in search_audit(db, reader, AuditQuery(actor=["alice@example.com"]))
    } == {"alice@example.com"}
    assert [e["action"] for e in search_audit(db, reader, AuditQuery(action=["user.*"]))] == [
        "user.create"
    ] * 2
    assert search_audit(db, reader, AuditQuery(action=["user%"])) == []  # no wildcard by accident
    assert [
        e["resource_id"]
        for e in search_audit(db, reader, AuditQuery(resource=["user"], descending=False))
    ] == ["1", "4"]
    assert len(search_audit(db, reader, AuditQuery(q="USER.CREATE"))) == 2
    assert len(search_audit(db, reader, AuditQuery(q="'acknowledged'"))) == 0
    assert len(search_audit(db, reader, AuditQuery(ip="10.1.2.3"))) == 3
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert search_audit(db, reader, AuditQuery(since=later)) == []
    assert [
        e["id"] for e in search_audit(db, reader, AuditQuery(sort="actor", limit=2, offset=1))
    ] == [3, 1]
    with pytest.raises(InvalidInputError) as info:
        search_audit(db, reader, AuditQuery(sort="id; drop table audit_log"))
    assert info.value.field == "sort"
    with pytest.raises(PermissionDenied):
        search_audit(db, Principal("op@example.com", kind="user", role="operator", user_id=3))


def test_export_json_and_csv_hold_every_entry(db) -> None:
    _fill(db, 5)
    with db.connect() as conn:
        audit.record(
            conn,
            Principal('=HYPERLINK("http://x")', kind="anonymous"),
            "access.denied",
            "route",
            "/x",
        )
    as_json = orjson.loads(b"".join(export(db, SYSTEM, "json")))
    assert [e["id"] for e in as_json] == [1, 2, 3, 4, 5, 6]
    assert as_json[1]["after"] == {"status": "acknowledged", "n": 1, "f": 1.5}
    text = b"".join(export(db, SYSTEM, "csv")).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert orjson.loads(rows[1]["after"]) == {"f": 1.5, "n": 1, "status": "acknowledged"}
    assert rows[5]["actor"].startswith("'=")  # a spreadsheet shows it, never runs it
    with pytest.raises(InvalidInputError):
        export(db, SYSTEM, "xml")


def test_klaxon_audit_export_writes_a_file(db, db_url, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)
    _fill(db, 3)
    out = tmp_path / "audit.json"
    with pytest.raises(SystemExit) as done:
        main(["audit", "export", "--format", "json", "--output", str(out)])
    assert done.value.code == 0
    assert len(orjson.loads(out.read_bytes())) == 3
    with pytest.raises(SystemExit) as done:
        main(
            ["audit", "export", "--format", "csv", "--output", str(tmp_path / "missing" / "a.csv")]
        )
    assert done.value.code == 2
    assert "cannot write" in capsys.readouterr().err
