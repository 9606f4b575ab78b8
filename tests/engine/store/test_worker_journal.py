"""The worker's checkpoint and journal: the engine state is saved every so often, each step in
between is journaled in its own transaction, and a worker loaded from the store (after a crash,
a failed batch or a restart) holds exactly the state the live worker had, on both stores."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import func, select

from engine.config import Settings
from engine.pipeline.state import EngineState
from engine.schema import records_from_dicts
from engine.store import rules as rules_store
from engine.store.db import Database
from engine.store.events import insert_events
from engine.store.models import Alert, EngineJournalRow, EngineStateRow
from engine.worker import MAX_ADVANCES, Worker

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)

# Every kind of state a replay must rebuild: firing alerts with repeats, a `for` timer, window
# contents, absence deadlines and an incident. Windows and absence make idle clock ticks real
# engine passes, so the ticks journaled with the next step matter.
RULES = """\
rule source "{{ title }}"
  when kind == "alert"
end

rule cpu_hot "CPU hot on {{ host }}"
  when title == "HighCPU"
  by host
  for 2m
  severity medium
end

rule brute_force "Brute force from {{ client_ip }}"
  when title == "auth.failed"
  count() >= 3 within 1m
  by client_ip
  severity high
end

rule host_silent "{{ host }} stopped reporting"
  when title == "heartbeat"
  absent for 5m
  by host
  severity critical
end

correlate by_service
  when severity >= medium
  by service
  within 10m
end
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _settings(settings: Settings, tmp_path: Path, **changes: object) -> Settings:
    """The test rules; no checkpoint by time or events unless a test asks for one."""
    rules = tmp_path / "rules.klx"
    rules.write_text(RULES)
    changes = {"checkpoint_seconds": 1e9, "checkpoint_events": 10**9, **changes}
    return replace(settings, rules_file=str(rules), **changes)  # type: ignore[arg-type]


def _put(db: Database, at: datetime, *items: dict[str, object]) -> None:
    with db.connect() as conn:
        insert_events(
            conn, records_from_dicts([{"ts": at, "source": "test", **item} for item in items])
        )


def _assert_same_state(live: EngineState, loaded: EngineState) -> None:
    assert loaded.scalars() == live.scalars()
    for name, frame in live.frames().items():
        try:
            assert_frame_equal(getattr(loaded, name), frame, check_exact=True)
        except AssertionError as err:
            raise AssertionError(f"state.{name} differs: {err}") from None


def _assert_reloads_to(worker: Worker, settings: Settings, clock: Clock) -> None:
    """A worker loaded from the store now holds `worker`'s state."""
    assert worker.engine is not None
    loaded = _loaded(worker.db, settings, clock).engine
    assert loaded is not None
    _assert_same_state(worker.engine.state, loaded.state)


def _journal_rows(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(EngineJournalRow)).scalar_one())


def _loaded(db: Database, settings: Settings, clock: Clock) -> Worker:
    worker = Worker(db, settings, clock=clock, owner="one")
    worker.load()
    return worker


_AGO = {"events": timedelta(seconds=1), "late": timedelta(seconds=70)}


def _scenario() -> list[tuple[str, ...]]:
    """Steps: ("events", items...) puts events stamped a second before the clock and steps;
    ("late", items...) stamps them before the last idle tick, so whether a replay ran that
    tick decides whether they are late; ("idle",) only moves the clock and steps."""
    hb = {"kind": "event", "title": "heartbeat", "host": "db1", "service": "db"}
    cpu = {"kind": "event", "title": "HighCPU", "host": "web1", "service": "web"}
    auth = {"kind": "event", "title": "auth.failed", "labels": {"client_ip": "10.0.0.9"}}
    alert = {"kind": "alert", "title": "Disk full", "fingerprint": "disk", "service": "db"}
    return [
        ("events", hb, cpu, alert),
        ("idle",),
        ("events", auth, alert),
        ("idle",),
        ("idle",),
        ("events", auth, auth, auth, cpu),
        ("idle",),
        ("events", {**alert, "status": "resolved"}),
        ("idle",),
        ("idle",),
        ("late", cpu, {**alert, "status": "firing"}),
        ("events", hb),
    ]  # type: ignore[return-value]


def _before_step(db: Database, clock: Clock, step: tuple[str, ...]) -> None:
    """Move the clock 50 s on and put the step's events, stamped as `_scenario` says."""
    clock.now += timedelta(seconds=50)
    if step[0] != "idle":
        _put(db, clock.now - _AGO[step[0]], *step[1:])  # type: ignore[arg-type]


def test_after_every_stored_step_a_worker_loaded_from_the_store_holds_the_live_state(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, tmp_path)
    clock = Clock()
    live = Worker(db, settings, clock=clock, owner="one")
    compared = 0
    for step in _scenario():
        _before_step(db, clock, step)
        live.step()
        if live._advances:
            continue  # an idle tick not stored yet: a restart may lose it (nothing was due)
        _assert_reloads_to(live, settings, clock)
        compared += 1
    # Only the first step was a checkpoint; the rest was journaled and replayed.
    assert _journal_rows(db) >= 6
    assert compared >= 7
    with db.read() as conn:
        assert conn.execute(select(EngineStateRow.batches)).scalar_one() == 1
        fired = conn.execute(select(Alert.rule, Alert.status)).all()
    # The scenario fired what it should have, so the states compared were not empty.
    assert {r for r, _ in fired} >= {"source", "cpu_hot", "brute_force", "host_silent"}


def test_a_restarted_worker_continues_exactly_where_the_live_one_was(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Crash after each stored step (a new worker from the store takes over): the alerts
    stored are those of a worker that never stopped."""

    def run(crash: bool) -> list[tuple[object, ...]]:
        clock = Clock()
        worker = Worker(db, settings, clock=clock, owner="one")
        for step in _scenario():
            _before_step(db, clock, step)
            worker.step()
            if crash and not worker._advances:
                worker = Worker(db, settings, clock=clock, owner="one")
        with db.read() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(
                        Alert.rule,
                        Alert.key,
                        Alert.status,
                        Alert.occurrences,
                        Alert.created_at,
                        Alert.resolved_at,
                        Alert.incident_id.is_(None),
                    ).order_by(Alert.rule, Alert.key)
                ).all()
            ]

    settings = _settings(settings, tmp_path)
    crashed = run(crash=True)
    with db.connect() as conn:
        for table in ("alert_history", "alerts", "incidents", "engine_journal", "engine_state"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    steady = run(crash=False)
    assert crashed == steady
    assert len(steady) >= 4


def test_the_journal_is_emptied_by_each_checkpoint(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, tmp_path, checkpoint_events=50)
    clock = Clock()
    worker = Worker(db, settings, clock=clock, owner="one")
    journal = []
    for _ in range(5):
        clock.now += timedelta(seconds=1)
        _put(db, clock.now, *({"kind": "event", "title": f"e{i}"} for i in range(30)))
        worker.step()
        journal.append(_journal_rows(db))
    # The first step saves the first checkpoint; then 30 events are journaled, and the next
    # 30 reach 50: a checkpoint, which empties the journal.
    assert journal == [0, 1, 0, 1, 0]

    # A clean stop saves the state: the next start has nothing to replay.
    _put(db, clock.now, {"kind": "event", "title": "last"})
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop, 0.01))
    runner.start()
    while _journal_rows(db) == 0:
        pass
    stop.set()
    runner.join(10)
    assert _journal_rows(db) == 0
    _assert_reloads_to(worker, settings, clock)


def test_idle_ticks_are_journaled_with_the_next_stored_step_or_on_their_own(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, tmp_path)
    clock = Clock()
    worker = Worker(db, settings, clock=clock, owner="one")
    _put(db, clock.now, {"kind": "event", "title": "heartbeat", "host": "a"})
    worker.step()
    for _ in range(MAX_ADVANCES):
        clock.now += timedelta(milliseconds=200)
        worker.step()  # nothing due: the heartbeat's deadline is minutes away
    assert len(worker._advances) == MAX_ADVANCES
    assert _journal_rows(db) == 0
    clock.now += timedelta(milliseconds=200)
    worker.step()
    assert worker._advances == []
    assert _journal_rows(db) == 1
    _assert_reloads_to(worker, settings, clock)


def test_rules_changed_while_the_worker_was_down_apply_after_the_journal_is_replayed(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """The journal replays with the rules its steps ran with; the change then swaps in as it
    would have live: the removed rule's alerts resolve."""
    settings = _settings(settings, tmp_path)
    clock = Clock()
    first = Worker(db, settings, clock=clock, owner="one")
    _put(db, clock.now, {"kind": "alert", "title": "A", "fingerprint": "a"})
    first.step()  # the first checkpoint
    clock.now += timedelta(seconds=1)
    _put(db, clock.now, {"kind": "event", "title": "auth.failed", "labels": {"client_ip": "x"}})
    _put(db, clock.now, *({"kind": "alert", "title": "B", "fingerprint": "b"} for _ in range(2)))
    first.step()  # journaled
    assert _journal_rows(db) == 1
    assert first.engine is not None
    live = first.engine.state

    with db.connect() as conn:
        without = RULES.replace('rule source "{{ title }}"\n  when kind == "alert"\nend\n', "")
        rules_store.save(conn, without, actor="t")
    second = _loaded(db, settings, clock)
    assert second.engine is not None
    _assert_same_state(live, second.engine.state)  # replayed with the old rules
    clock.now += timedelta(seconds=1)
    second.step()
    with db.read() as conn:
        source = conn.execute(select(Alert.key, Alert.status, Alert.occurrences)).all()
        saved_rules = conn.execute(select(EngineStateRow.rules_text)).scalar_one()
    assert sorted((s, n) for _, s, n in source) == [("resolved", 1), ("resolved", 2)]
    assert 'rule source "{{ title }}"' not in saved_rules  # the swap saved a checkpoint
    assert _journal_rows(db) == 0


def test_a_failed_step_rebuilds_from_the_journal_and_counts_each_event_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, tmp_path)
    clock = Clock()
    failures = iter([False, False, True])

    def flaky(*_: object) -> None:
        if next(failures, False):
            raise RuntimeError("the store went away")

    worker = Worker(db, settings, clock=clock, owner="one", hooks=[flaky])
    # b is known firing only through the journal: the checkpoint was saved before it fired.
    for fingerprint in ("a", "b", "b"):
        clock.now += timedelta(seconds=1)
        _put(db, clock.now, {"kind": "alert", "title": "A", "fingerprint": fingerprint})
        try:
            worker.step()
        except RuntimeError:
            assert worker.engine is None  # memory is ahead of the store: dropped
    assert worker.step() == 1  # the failed batch again, from checkpoint + journal
    with db.read() as conn:
        rows = conn.execute(select(Alert.fingerprint, Alert.occurrences)).all()
    assert sorted(tuple(r) for r in rows) == [("a", 1), ("b", 2)]


@pytest.mark.parametrize("steps", [1, 3])
def test_a_store_saved_before_the_journal_existed_loads_with_the_current_rules(
    db: Database, settings: Settings, tmp_path: Path, steps: int
) -> None:
    """A checkpoint without rules text (older versions, the demo) loads as it always did."""
    settings = _settings(settings, tmp_path)
    clock = Clock()
    worker = Worker(db, settings, clock=clock, owner="one")
    for _ in range(steps):
        _put(db, clock.now, {"kind": "alert", "title": "A", "fingerprint": "a"})
        worker.step()
    with db.connect() as conn:
        conn.execute(EngineStateRow.__table__.update().values(rules_text=None, rules_identity=None))
    again = _loaded(db, settings, clock)
    assert again.engine is not None
    assert [r.rule_id for r in again.engine.rules.rules] == [
        "source",
        "cpu_hot",
        "brute_force",
        "host_silent",
    ]
