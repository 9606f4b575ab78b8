"""The ingest queue between the API and the worker: one small protocol, several backends.

The SQL inbox (`sql_inbox`) is the embedded default: the API inserts events and their inbox
rows in one transaction; the worker reads a batch, and deletes its inbox rows in the same
transaction that stores the batch's results, so a crash in between redelivers the batch and
changes nothing twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import polars as pl
from sqlalchemy import Connection


@dataclass(frozen=True)
class Batch:
    events: pl.DataFrame  # FED_SCHEMA (events without their raw payload), in arrival order
    ids: tuple[int, ...]  # the queue's own ids, to acknowledge
    event_pks: tuple[int, ...]  # the events' store ids (`events.id`), in `events` order: journaled


class EventQueue(Protocol):
    def claim(self, limit: int) -> Batch | None:
        """The oldest unprocessed events, up to `limit`, or None when there are none."""

    def ack(self, conn: Connection, batch: Batch) -> bool:
        """Remove the batch inside the caller's transaction; False if another worker took it."""

    def depth(self) -> int:
        """How many events wait."""

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        """Block until events wait, `stop` is set or `timeout` seconds pass; True if events wait."""
