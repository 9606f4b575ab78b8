"""`klaxon worker`: the imperative shell around the engine.

Each step reads a batch from the queue, runs it through the engine, and in ONE transaction
stores the alerts it changed, the engine state and the batch's acknowledgement. A crash before
the commit leaves the batch in the queue and the saved state as it was, so after a restart the
batch runs again and changes everything exactly once.
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
from sqlalchemy import Connection, insert, select, update

from dsl.errors import DslErrors
from engine.config import Settings
from engine.pipeline.engine import Engine, compile_for_engine
from engine.pipeline.state import EngineState
from engine.queue import EventQueue
from engine.queue.sql_inbox import SqlInbox
from engine.store import rules as rules_store
from engine.store.db import Database, orm
from engine.store.models import EngineStateRow, Setting
from engine.store.transitions import Applied, apply_transitions

log = logging.getLogger("klaxon.worker")

LEASE_KEY = "worker.lease"
STATS_KEY = "worker.stats"
LEASE_SECONDS = 15.0

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
        self._stats_saved = 0.0
        self._lease_renewed = 0.0

    # ---------------------------------------------------------------- state

    def load(self) -> None:
        """(Re)build the engine from the store: the current rules and the last saved state."""
        with self.db.connect() as conn:
            rules_store.ensure_rules(conn, self.settings.rules_file)
            text, identity = rules_store.composed_text(conn, self.clock())
            row = (
                orm(conn)
                .scalars(select(EngineStateRow).where(EngineStateRow.shard == 0))
                .one_or_none()
            )
        compiled = compile_for_engine(text, "rules.klx")
        state = EngineState.from_bytes(unpack_state(row.state)) if row is not None else None
        self.engine = Engine(compiled, state)
        self._rules_identity = identity
        self.stats.rules_version = identity.split(":")[0]

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
        nothing (re-advancing an idle clock after a restart is harmless: nothing is due).
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
            if batch is not None:
                outs.append(self.engine.feed(batch.events, until=self.clock()))
            else:
                outs.append(self.engine.advance(self.clock()))
            self.stats.rule_eval_seconds += sum(self.engine.timings.values()) - before
            transitions = pl.concat(outs)
            lease_due = not self._lease_held()
            if batch is not None or transitions.height or swapped is not None or lease_due:
                # Serialized before the transaction: SQLite's writer lock is not held for it.
                blob = pack_state(self.engine.state.to_bytes(canonical=False))
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
                    self._save_state(conn, blob)
                if lease_due:
                    self._lease_renewed = renewing
        except BaseException:
            # Nothing was committed: the engine's memory is ahead of the store. Start again
            # from the saved state; the batch is still in the queue.
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

    def _save_state(self, conn: Connection, blob: bytes) -> None:
        now = self.clock()
        values = {
            "state": blob,
            "saved_at": now,
            "rules_version": int(self.stats.rules_version or 0),
        }
        result = conn.execute(
            update(EngineStateRow)
            .where(EngineStateRow.shard == 0)
            .values(batches=EngineStateRow.batches + 1, **values)
        )
        if result.rowcount == 0:
            conn.execute(insert(EngineStateRow).values(shard=0, batches=1, **values))

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
