"""The worker's saved engine state: stored compressed, read back byte for byte, on both stores;
a restarted worker continues from it, and a second worker cannot write while the lease holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine.pipeline.state import EngineState
from engine.schema import records_from_dicts
from engine.store.events import insert_events
from engine.store.models import Alert, AlertHistory, EngineStateRow
from engine.worker import LeaseLost, Worker, pack_state, unpack_state


def _alerts(n: int, tag: str) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "ts": now,
            "kind": "alert",
            "source": "test",
            "title": f"Alert {tag}-{i}",
            "severity": "high",
            "service": "svc",
            "fingerprint": f"{tag}-{i}",
        }
        for i in range(n)
    ]


def _put(db, items: list[dict[str, object]]) -> None:
    with db.connect() as conn:
        insert_events(conn, records_from_dicts(items))


def test_packed_state_unpacks_to_the_same_bytes_and_plain_state_passes_through() -> None:
    blob = EngineState().to_bytes()
    assert unpack_state(pack_state(blob)) == blob
    assert unpack_state(blob) == blob  # saved before compression (or by the demo)


def test_a_restarted_worker_continues_from_the_compressed_state(db, settings) -> None:
    first = Worker(db, settings, owner="one")
    _put(db, _alerts(30, "a"))
    assert first.step() == 30
    assert first.engine is not None
    want = first.engine.state.to_bytes()  # an idle step saves nothing, so take it here
    with db.read() as conn:
        stored = conn.execute(select(EngineStateRow.state)).scalar_one()
    assert len(stored) < len(want)
    # Saved as written (not canonical bytes), it reads back to the same state.
    assert EngineState.from_bytes(unpack_state(stored)).to_bytes() == want

    # The same alerts again: a worker that restored the state knows they are open (repeats,
    # not new alerts), which it could not if the state were lost.
    second = Worker(db, settings, owner="one")
    second.load()
    assert second.engine is not None
    assert second.engine.state.to_bytes() == want
    _put(db, _alerts(30, "a"))
    while second.step():
        pass
    with db.read() as conn:
        rows = conn.execute(select(Alert.fingerprint, Alert.occurrences)).all()
    assert len(rows) == 30
    assert {n for _, n in rows} == {2}


def test_a_second_worker_cannot_write_while_the_first_holds_the_lease(db, settings) -> None:
    first = Worker(db, settings, owner="one")
    _put(db, _alerts(3, "a"))
    assert first.step() == 3
    _put(db, _alerts(3, "b"))
    with pytest.raises(LeaseLost):
        Worker(db, settings, owner="two").step()
    assert first.step() == 3  # still its lease, renewed or not


def test_alert_rows_keep_awkward_text_and_json_exactly(db, settings) -> None:
    """Alerts and their history go in with COPY on PostgreSQL: tabs, newlines, backslashes,
    quotes and non-ASCII text must come back as sent."""
    title = 'tab\there\nnewline \\backslash "quoted" ünïcode \\N'
    item = {**_alerts(1, "odd")[0], "title": title, "labels": {"k\tey": "v\\al\nue", "z": ""}}
    _put(db, [item])
    assert Worker(db, settings).step() == 1
    with db.read() as conn:
        row = conn.execute(
            select(Alert.id, Alert.title, Alert.event_labels, Alert.notify, Alert.created_at)
        ).one()
        history = conn.execute(select(AlertHistory.alert_id, AlertHistory.details)).all()
    assert row.title == title
    assert row.event_labels == {"k\tey": "v\\al\nue", "z": ""}
    assert isinstance(row.notify, list)
    assert row.created_at.tzinfo is not None
    assert [h.alert_id for h in history] == [row.id]
    assert history[0].details["rule"]
