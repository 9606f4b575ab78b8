"""The SQL inbox queue: `inbox` rows pointing at `events`, oldest first."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, delete, func, select

from engine.queue import Batch
from engine.store.db import Database
from engine.store.events import inbox_batch
from engine.store.models import InboxItem

# How often an idle worker looks for new events: a look is one indexed row read (about 0.2 ms
# of CPU), so an idle worker spends about 1% of a core on it and an event waits at most this
# long before its batch starts, instead of the whole batch wait.
POLL_S = 0.02


class SqlInbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, limit: int) -> Batch | None:
        with self.db.read() as conn:
            found = inbox_batch(conn, limit)
        if found is None:
            return None
        frame, ids, event_pks = found
        return Batch(frame, tuple(ids), tuple(event_pks))

    def ack(self, conn: Connection, batch: Batch) -> bool:
        if conn.dialect.name == "postgresql":
            # One array parameter: psycopg parses a statement with a placeholder per id slowly
            # (0.17 s to delete 5,000).
            result = conn.exec_driver_sql(
                "DELETE FROM inbox WHERE id = ANY(%s)", (list(batch.ids),)
            )
        else:
            result = conn.execute(delete(InboxItem).where(InboxItem.id.in_(batch.ids)))
        return result.rowcount == len(batch.ids)

    def waiting(self) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(InboxItem.id).limit(1)).first() is not None

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.waiting():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or stop.wait(min(POLL_S, left)):
                return False

    def depth(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(InboxItem)).scalar_one())
