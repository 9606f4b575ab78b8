"""A flood of refused requests is counted in the audit log without flooding it: per (client
address, actor, method, route template) at most one `access.denied` entry a minute, whose
`count` says how many refusals it stands for; the chain still verifies."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api.app import create_app
from engine.auth import audit
from engine.store.models import AuditEntry


class Clock:
    """The folder's clock, moved by hand (the window is a minute; tests do not wait one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _denied(db: Any) -> list[Any]:
    with db.read() as conn:
        return list(
            conn.execute(
                select(AuditEntry)
                .where(AuditEntry.action == "access.denied")
                .order_by(AuditEntry.id)
            )
        )


def _app(settings: Any, db: Any) -> tuple[Any, Clock]:
    app = create_app(settings, db)
    clock = Clock()
    app.state.refusals.clock = clock
    return app, clock


def test_a_flood_is_folded_and_every_refusal_counted(settings, db) -> None:
    app, clock = _app(settings, db)
    with TestClient(app) as bare:
        for _ in range(500):
            assert bare.get("/api/v1/alerts").status_code == 401
        first = _denied(db)
        assert len(first) == 1  # the first refusal; the other 499 are folded in
        assert first[0].after["count"] == 1
        assert first[0].after["route"] == "/api/v1/alerts"
        clock.now += 61  # the minute is over: the next refusal's entry carries the 499
        assert bare.get("/api/v1/alerts").status_code == 401
        entries = _denied(db)
        assert len(entries) == 2
        assert entries[1].after["count"] == 500
        assert entries[1].after["since"] >= first[0].at.isoformat()[:19]
        assert entries[1].actor == "anonymous"
        assert entries[1].after["path"] == "/api/v1/alerts"
        assert entries[1].after["status"] == 401
    assert sum(e.after["count"] for e in _denied(db)) == 501
    assert audit.verify(db).ok


def test_other_addresses_and_paths_get_their_own_entries(settings, db) -> None:
    app, _ = _app(settings, db)
    other = TestClient(app, client=("203.0.113.7", 4242))  # the app runs in `one`'s lifespan
    with TestClient(app) as one:
        for _ in range(20):
            assert one.get("/api/v1/alerts").status_code == 401
        assert len(_denied(db)) == 1
        assert other.get("/api/v1/alerts").status_code == 401  # another address
        assert one.get("/api/v1/silences").status_code == 401  # another path
        assert one.post("/api/v1/alerts/1/acknowledge").status_code == 401  # another route
        assert one.post("/api/v1/alerts/2/acknowledge").status_code == 401  # same route
        entries = _denied(db)
        assert [(e.ip, e.after["route"], e.after["count"]) for e in entries] == [
            ("testclient", "/api/v1/alerts", 1),
            ("203.0.113.7", "/api/v1/alerts", 1),
            ("testclient", "/api/v1/silences", 1),
            ("testclient", "/api/v1/alerts/{alert_id}/acknowledge", 1),
        ]
    # Shutting down writes what was still folded in: 19 of /alerts, 1 of acknowledge.
    entries = _denied(db)
    assert len(entries) == 6
    assert sorted((e.after["route"], e.after["count"]) for e in entries[4:]) == [
        ("/api/v1/alerts", 19),
        ("/api/v1/alerts/{alert_id}/acknowledge", 1),
    ]
    assert sum(e.after["count"] for e in entries) == 24
    assert audit.verify(db).ok


def test_a_quiet_key_is_written_on_the_next_refusal_elsewhere(settings, db) -> None:
    app, clock = _app(settings, db)
    with TestClient(app) as bare:
        for _ in range(5):
            bare.get("/api/v1/alerts")
        clock.now += 61
        bare.get("/api/v1/silences")  # another key; the sweep writes the /alerts fold too
        entries = _denied(db)
        assert [(e.after["route"], e.after["count"]) for e in entries] == [
            ("/api/v1/alerts", 1),
            ("/api/v1/silences", 1),
            ("/api/v1/alerts", 4),
        ]
    assert len(_denied(db)) == 3  # nothing was left to write at shutdown
    assert audit.verify(db).ok
