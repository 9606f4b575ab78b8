"""`klaxon worker`: the imperative shell around the engine.

Each step reads a batch from the queue, runs it through the engine, and in ONE transaction
stores the alerts it changed, the batch's acknowledgement and a journal entry for the step (the
batch's event ids and the clock it ran at). A crash before the commit leaves the batch in the
queue and the journal as it was, so after a restart the batch runs again and changes
everything exactly once.

The engine state itself is checkpointed every so often (`checkpoint_seconds`,
`checkpoint_events`, on a rules change and on shutdown), in a step's transaction that also
empties the journal. Saving it after every batch cost time in proportion to the open alerts:
92 MB of Arrow, 0.2-0.4 s, for 170,000 of them. A restarted worker loads the checkpoint and
feeds the journaled steps through the engine again, discarding their results (they are
stored), which rebuilds exactly the state the stored results came from.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select, update

from dsl.errors import DslErrors
from engine.config import Settings
from engine.pipeline.engine import Engine, compile_for_engine
from engine.pipeline.state import EngineState
from engine.queue import Batch, EventQueue
from engine.queue.sql_inbox import SqlInbox
from engine.store import rules as rules_store
from engine.store.db import Database, orm
from engine.store.events import events_by_pk
from engine.store.models import EngineJournalRow, EngineStateRow, Setting
from engine.store.transitions import Applied, apply_transitions

log = logging.getLogger("klaxon.worker")

LEASE_KEY = "worker.lease"
STATS_KEY = "worker.stats"
LEASE_SECONDS = 15.0
# A checkpoint at the latest after this many journaled steps: replay runs one engine pass per
# step, so this bounds a restart's work when batches are small.
CHECKPOINT_STEPS = 500
# Idle clock ticks (steps that store nothing) are kept in memory and written with the next
# journaled step, which must replay them first; this many are journaled on their own.
MAX_ADVANCES = 64

# Called inside the batch's transaction after alerts are stored (notifications enqueue here).
Hook = Callable[[Connection, Applied, pl.DataFrame], None]


@dataclass
class WorkerStats:
    batches: int = 0
    events: int = 0
    transitions: int = 0
    last_batch_seconds: float = 0.0
    total_batch_seconds: float = 0.0
    rule_eval_seconds: float = 0.0
    late_events: int = 0
    rules_version: str = ""
    rules_error: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_PACKED = b"KLXZSTD1"


def pack_state(blob: bytes) -> bytes:
    """The engine state as stored: zstd-compressed (Arrow IPC of many similar strings shrinks
    ~20x; writing 5 MB a batch cost SQLite 36 ms of its commit, compressing it 9 ms)."""
    packed = bytes(pa.compress(blob, codec="zstd", asbytes=True))
    return _PACKED + struct.pack(">Q", len(blob)) + packed


def unpack_state(stored: bytes) -> bytes:
    """`pack_state` undone; a state saved uncompressed (older versions, the demo) as it is."""
    if not stored.startswith(_PACKED):
        return stored
    (size,) = struct.unpack(">Q", stored[len(_PACKED) : len(_PACKED) + 8])
    raw = pa.decompress(
        stored[len(_PACKED) + 8 :], decompressed_size=size, codec="zstd", asbytes=True
    )
    return bytes(raw)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _to_us(value: datetime) -> int:
    """Exact microseconds since the epoch (a naive time is UTC): journaled clocks must come
    back as the very instants the engine saw."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _US


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _pack_ints(values: list[int] | tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(values)}q", *values)


def _unpack_ints(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 8}q", data))


class LeaseLost(Exception):
    """Another worker holds the lease: this one must not write."""


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        queue: EventQueue | None = None,
        clock: Callable[[], datetime] | None = None,
        hooks: list[Hook] | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.queue: EventQueue = queue or SqlInbox(db)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.hooks = list(hooks or [])
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.stats = WorkerStats()
        self.engine: Engine | None = None
        self._rules_identity = ""
        self._rules_text = ""
        self._stats_saved = 0.0
        self._lease_renewed = 0.0
        # Since the last checkpoint: whether there is one, when it was, what the journal holds,
        # and the clock ticks not journaled yet.
        self._checkpointed = False
        self._checkpoint_at = 0.0
        self._journal_steps = 0
        self._journal_events = 0
        self._advances: list[int] = []

    # ---------------------------------------------------------------- state

    def load(self) -> None:
        """(Re)build the engine from the store: the last checkpoint with the rules it ran
        with, then every journaled step fed again (their results are stored already). Rules
        changed since then are swapped in by the next step, as if the worker had kept running.
        """
        with self.db.connect() as conn:
            rules_store.ensure_rules(conn, self.settings.rules_file)
            text, identity = rules_store.composed_text(conn, self.clock())
            row = (
                orm(conn)
                .scalars(select(EngineStateRow).where(EngineStateRow.shard == 0))
                .one_or_none()
            )
            journal = conn.execute(
                select(
                    EngineJournalRow.until_us,
                    EngineJournalRow.advances,
                    EngineJournalRow.event_pks,
                )
                .where(EngineJournalRow.shard == 0)
                .order_by(EngineJournalRow.id)
            ).all()
        compiled = None
        if row is not None and row.rules_text is not None:
            try:
                compiled = compile_for_engine(row.rules_text, "rules.klx")
                text, identity = row.rules_text, row.rules_identity or ""
            except DslErrors as err:  # saved by a Klaxon whose language differed
                log.error("the checkpoint's rules no longer compile; using the current:\n%s", err)
        compiled = compiled or compile_for_engine(text, "rules.klx")
        state = EngineState.from_bytes(unpack_state(row.state)) if row is not None else None
        engine = Engine(compiled, state)
        events = 0
        with self.db.read() as conn:  # no transaction held open while the journal replays
            for until_us, advances, event_pks in journal:
                for tick in _unpack_ints(advances):
                    engine.advance(_from_us(tick))
                pks = _unpack_ints(event_pks)
                if pks:
                    engine.feed(events_by_pk(conn, pks), until=_from_us(until_us))
                else:
                    engine.advance(_from_us(until_us))
                events += len(pks)
        if journal:
            log.info(
                "rebuilt the engine state from %d journaled steps (%d events)", len(journal), events
            )
        self.engine = engine
        self._rules_identity = identity
        self._rules_text = text
        self.stats.rules_version = identity.split(":")[0]
        self._checkpointed = row is not None
        self._checkpoint_at = time.monotonic()
        self._journal_steps = len(journal)
        self._journal_events = events
        self._advances = []

    def _refresh_rules(self, conn: Connection) -> pl.DataFrame | None:
        """Swap in changed rules (or API silences); resolves alerts of rules that went away."""
        assert self.engine is not None
        text, identity = rules_store.composed_text(conn, self.clock())
        if identity == self._rules_identity:
            return None
        try:
            compiled = compile_for_engine(text, "rules.klx")
        except DslErrors as err:  # saved rules always compile; a broken silence must not stop us
            self.stats.rules_error = str(err)
            log.error("rules do not compile, keeping the running version:\n%s", err)
            self._rules_identity = identity
            return None
        self.stats.rules_error = None
        self._rules_identity = identity
        self._rules_text = text
        self.stats.rules_version = identity.split(":")[0]
        return self.engine.swap_rules(compiled, self.clock())

    # ---------------------------------------------------------------- the lease

    def _lease_held(self) -> bool:
        """True while the lease this worker last wrote surely still holds: renewed less than a
        third of its length ago, so no other worker can have taken it. Steps then skip the
        lease's read and write (two statements a batch)."""
        return time.monotonic() - self._lease_renewed < LEASE_SECONDS / 3

    def _hold_lease(self, conn: Connection) -> None:
        now = self.clock()
        row = orm(conn).scalars(select(Setting).where(Setting.key == LEASE_KEY)).one_or_none()
        value = {"owner": self.owner, "until": (now + timedelta(seconds=LEASE_SECONDS)).isoformat()}
        if row is None:
            conn.execute(
                insert(Setting).values(
                    key=LEASE_KEY, value=value, updated_at=now, updated_by=self.owner
                )
            )
            return
        held = row.value or {}
        until = datetime.fromisoformat(held["until"]) if held.get("until") else now
        if held.get("owner") not in (None, self.owner) and until > now:
            raise LeaseLost(f"worker {held.get('owner')} holds the lease until {until.isoformat()}")
        conn.execute(
            update(Setting).where(Setting.key == LEASE_KEY).values(value=value, updated_at=now)
        )

    # ---------------------------------------------------------------- one step

    def step(self) -> int:
        """Process one batch (or only the clock, when the queue is empty). Returns events taken.

        The engine runs outside the write transaction, so the store's writer lock (SQLite's)
        is held only while results are written; an idle step that changes nothing writes
        nothing (its clock tick is journaled with the next step that does).
        """
        if self.engine is None:
            self.load()
        assert self.engine is not None
        batch = self.queue.claim(self.settings.batch_size)
        started = time.perf_counter()
        try:
            outs = []
            with self.db.read() as conn:
                swapped = self._refresh_rules(conn)
            if swapped is not None and swapped.height:
                outs.append(swapped)
            before = sum(self.engine.timings.values())
            # Live mode: the wall clock moves the watermark too (DSL.md §4.1); one pass does
            # both, since a pass costs about the same for a small batch as for none.
            now = self.clock()
            if batch is not None:
                outs.append(self.engine.feed(batch.events, until=now))
            else:
                outs.append(self.engine.advance(now))
            self.stats.rule_eval_seconds += sum(self.engine.timings.values()) - before
            transitions = pl.concat(outs)
            lease_due = not self._lease_held()
            stores = (
                batch is not None
                or transitions.height > 0
                or swapped is not None
                or len(self._advances) >= MAX_ADVANCES
            )
            if not stores:
                self._advances.append(_to_us(now))
            if stores or lease_due:
                checkpoint = stores and self._checkpoint_due(swapped is not None, batch)
                # Serialized before the transaction: SQLite's writer lock is not held for it.
                blob = (
                    pack_state(self.engine.state.to_bytes(canonical=False)) if checkpoint else None
                )
                renewing = time.monotonic()
                with self.db.connect() as conn:
                    if lease_due:
                        self._hold_lease(conn)
                    applied = (
                        apply_transitions(conn, transitions) if transitions.height else Applied()
                    )
                    for hook in self.hooks:
                        hook(conn, applied, transitions)
                    if batch is not None and not self.queue.ack(conn, batch):
                        raise LeaseLost("another worker acknowledged part of this batch")
                    if blob is not None:
                        self._save_state(conn, blob, self._journal_steps + 1)
                    elif stores:
                        self._journal(conn, now, batch)
                if lease_due:
                    self._lease_renewed = renewing
                if blob is not None:
                    self._checkpointed_now()
                elif stores:
                    self._journal_steps += 1
                    self._journal_events += batch.events.height if batch is not None else 0
                    self._advances = []
        except BaseException:
            # Nothing was committed: the engine's memory is ahead of the store. Start again
            # from the checkpoint and the journal; the batch is still in the queue.
            self.engine = None
            raise
        took = time.perf_counter() - started
        n = batch.events.height if batch is not None else 0
        self.stats.batches += 1 if batch is not None else 0
        self.stats.events += n
        self.stats.transitions += transitions.height
        self.stats.last_batch_seconds = took
        self.stats.total_batch_seconds += took
        self.stats.late_events = self.engine.state.late_events if self.engine else 0
        self._maybe_save_stats()
        return n

    # ---------------------------------------------------------------- checkpoint and journal

    def _checkpoint_due(self, swapped: bool, batch: Batch | None) -> bool:
        """A checkpoint with this step: the first one, on a rules change (the journal replays
        with one set of rules), or when the journal has grown by time, events or steps."""
        events = self._journal_events + (batch.events.height if batch is not None else 0)
        return (
            swapped
            or not self._checkpointed
            or events >= self.settings.checkpoint_events
            or self._journal_steps + 1 >= CHECKPOINT_STEPS
            or time.monotonic() - self._checkpoint_at >= self.settings.checkpoint_seconds
        )

    def _journal(self, conn: Connection, now: datetime, batch: Batch | None) -> None:
        conn.execute(
            insert(EngineJournalRow).values(
                shard=0,
                until_us=_to_us(now),
                advances=_pack_ints(self._advances),
                event_pks=_pack_ints(batch.event_pks) if batch is not None else b"",
            )
        )

    def _save_state(self, conn: Connection, blob: bytes, steps: int) -> None:
        """The checkpoint: the state and the rules it ran with; the journal it covers goes.
        `steps`: how many steps it adds to the count of steps saved."""
        now = self.clock()
        values = {
            "state": blob,
            "saved_at": now,
            "rules_version": int(self.stats.rules_version or 0),
            "rules_text": self._rules_text,
            "rules_identity": self._rules_identity,
        }
        result = conn.execute(
            update(EngineStateRow)
            .where(EngineStateRow.shard == 0)
            .values(batches=EngineStateRow.batches + steps, **values)
        )
        if result.rowcount == 0:
            conn.execute(insert(EngineStateRow).values(shard=0, batches=steps, **values))
        conn.execute(delete(EngineJournalRow).where(EngineJournalRow.shard == 0))

    def _checkpointed_now(self) -> None:
        self._checkpointed = True
        self._checkpoint_at = time.monotonic()
        self._journal_steps = 0
        self._journal_events = 0
        self._advances = []

    def checkpoint(self) -> None:
        """Save the state now (a clean shutdown: the next start replays nothing)."""
        if self.engine is None or (self._journal_steps == 0 and self._checkpointed):
            return
        blob = pack_state(self.engine.state.to_bytes(canonical=False))
        with self.db.connect() as conn:
            self._hold_lease(conn)
            self._save_state(conn, blob, self._journal_steps)
        self._checkpointed_now()

    def _maybe_save_stats(self) -> None:
        now = time.monotonic()
        if now - self._stats_saved < 5.0:
            return
        self._stats_saved = now
        payload = {
            **self.stats.to_dict(),
            "queue_depth": self.queue.depth(),
            "owner": self.owner,
            "saved_at": self.clock().isoformat(),
        }
        with self.db.connect() as conn:
            updated = conn.execute(
                update(Setting)
                .where(Setting.key == STATS_KEY)
                .values(value=payload, updated_at=self.clock())
            )
            if updated.rowcount == 0:
                conn.execute(
                    insert(Setting).values(
                        key=STATS_KEY, value=payload, updated_at=self.clock(), updated_by=self.owner
                    )
                )

    # ---------------------------------------------------------------- the loop

    def run(self, stop: threading.Event | None = None, idle_sleep: float | None = None) -> None:
        """Steps until `stop` is set; on an empty queue, waits for an event or `idle` seconds."""
        stop = stop or threading.Event()
        idle = idle_sleep if idle_sleep is not None else self.settings.batch_wait_ms / 1000
        while not stop.is_set():
            try:
                taken = self.step()
            except LeaseLost as err:
                log.warning("%s; waiting", err)
                stop.wait(LEASE_SECONDS / 3)
                continue
            except Exception:
                log.exception("batch failed; retrying from the saved state")
                stop.wait(1.0)
                continue
            # Events that arrived while a batch ran are taken at once, so a busy queue never
            # waits. An empty one is watched until an event arrives (the inbox looks every
            # 20 ms), and at least every `idle` the clock moves on (timers, absence rules).
            if taken == 0:
                self.queue.wait(stop, idle)
        try:
            self.checkpoint()
        except Exception:  # the journal still holds every step: the next start replays it
            log.exception("the checkpoint at shutdown failed")
