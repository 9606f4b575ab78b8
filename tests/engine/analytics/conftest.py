"""Fixtures for analytics tests: small hand-made datasets inserted straight into the store.

`T0` is a Monday, 2026-03-02 00:00 UTC; `at("1d 10:00")`-style helpers keep datasets readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import insert

from engine.analytics.warehouse import Warehouse
from engine.store.db import Database
from engine.store.models import Alert, Notification, Team, TeamMember, User

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def at(day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


def alert_row(i: int, created: datetime, **fields: Any) -> dict[str, Any]:
    """One `alerts` row with sensible defaults; `key` defaults to a fingerprint of its own."""
    fp = fields.pop("fingerprint", f"fp{i}")
    row: dict[str, Any] = {
        "id": i,
        "rule": "source",
        "key": orjson.dumps({"fingerprint": fp}).decode(),
        "fingerprint": fp,
        "title": f"alert {i}",
        "severity": "high",
        "status": "active",
        "is_open": True,
        "source": "prometheus",
        "service": "api",
        "team": "platform",
        "occurrences": 1,
        "first_seen": created,
        "last_seen": created,
        "source_started_at": created,
        "created_at": created,
        "muted_by": [],
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "resolution": None,
    }
    row.update(fields)
    if row.get("resolved_at") is not None and "is_open" not in fields:
        row["is_open"] = False
        row["status"] = fields.get("status", "resolved")
    return row


def insert_alerts(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.connect() as conn:
        conn.execute(insert(Alert), rows)
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            conn.exec_driver_sql("SELECT setval('alerts_id_seq', (SELECT max(id) FROM alerts))")


def insert_notifications(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.connect() as conn:
        conn.execute(insert(Notification), [{"sent_at": None, "payload": {}, **r} for r in rows])


def insert_team(
    db: Database, name: str, members: list[tuple[str, str]], tz: str | None = None
) -> None:
    """A team and its members, given as (email, user time zone)."""
    with db.connect() as conn:
        team_id = conn.execute(
            insert(Team).values(name=name, quiet_hours={"tz": tz} if tz else {}).returning(Team.id)
        ).scalar_one()
        for email, user_tz in members:
            user_id = conn.execute(
                insert(User)
                .values(email=email, name=email.split("@")[0], role="operator", tz=user_tz)
                .returning(User.id)
            ).scalar_one()
            conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))


@pytest.fixture
def wh(db: Database, tmp_path: Path) -> Iterator[Warehouse]:
    """A warehouse over the test store; every query refreshes the snapshot first (max age 0)."""
    warehouse = Warehouse(db, tmp_path / "data", max_age_s=0.0)
    yield warehouse
    warehouse.close()


class Store:
    """What tests use to build datasets: times relative to T0 and rows with defaults."""

    T0 = T0
    at = staticmethod(at)
    alert = staticmethod(alert_row)

    def __init__(self, db: Database) -> None:
        self.db = db

    def alerts(self, rows: list[dict[str, Any]]) -> None:
        insert_alerts(self.db, rows)

    def notifications(self, rows: list[dict[str, Any]]) -> None:
        insert_notifications(self.db, rows)

    def team(self, name: str, members: list[tuple[str, str]], tz: str | None = None) -> None:
        insert_team(self.db, name, members, tz)


@pytest.fixture
def store(db: Database) -> Store:
    return Store(db)


@pytest.fixture
def store_factory() -> type[Store]:
    """Store for a database the test makes itself (the CLI tests' SQLite file)."""
    return Store
