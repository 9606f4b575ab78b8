"""The worker's scheduler: deliveries and retries, group flushes, digests, escalations, repeats.

`klaxon worker` runs it in a thread next to the batch loop, with the `schedule` library. Each
job is wrapped so an exception is logged and the loop goes on (an exception escaping
`run_pending` would end it), and every timer lives in the store: a row's next attempt, a
group's flush, an escalation's next level. A restart loses none of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import schedule

from engine.config import Settings
from engine.notify.clock import Clock
from engine.notify.deliver import Deliverer, Round
from engine.notify.enqueue import DELIVERY_WAKE
from engine.notify.escalation import escalate_due
from engine.notify.repeats import repeat_due
from engine.store.db import Database

log = logging.getLogger("klaxon.scheduler")

DELIVER_EVERY_S = 1  # retries, group flushes, digests and quiet-hours releases come due here
ESCALATE_EVERY_S = 5
REPEAT_EVERY_S = 30
ROUND_LIMIT = 500
MAX_ROUNDS = 20  # per run of the delivery job, so the other jobs get their turn
WAKE_RETRIES_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


class NotifyScheduler:
    def __init__(
        self, db: Database, settings: Settings, *, clock: Clock | None = None, poll_s: float = 0.1
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.poll_s = poll_s
        self.deliverer = Deliverer(db, settings, clock)
        self.failures = 0
        self.scheduler = schedule.Scheduler()
        self.scheduler.every(DELIVER_EVERY_S).seconds.do(self._job, "deliver", self.deliver)
        self.scheduler.every(ESCALATE_EVERY_S).seconds.do(self._job, "escalate", self.escalate)
        self.scheduler.every(REPEAT_EVERY_S).seconds.do(self._job, "repeat", self.repeat)

    # ---------------------------------------------------------------- the jobs

    def deliver(self) -> Round:
        """Send everything due, a round at a time."""
        total = Round()
        for _ in range(MAX_ROUNDS):
            r = self.deliverer.deliver_due(ROUND_LIMIT)
            for name in total.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(r, name))
            if r.claimed < ROUND_LIMIT:
                break
        return total

    def escalate(self) -> int:
        return escalate_due(self.db, self.settings, self.clock)

    def repeat(self) -> int:
        return repeat_due(self.db, self.settings, self.clock)

    def _job(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            self.failures += 1
            log.exception("scheduler job %s failed; it runs again on schedule", name)
            return None

    def run_all(self) -> dict[str, Any]:
        """Every job once, now, in order (tests and `klaxon notify run-once`); what each did."""
        return {
            "escalated": self._job("escalate", self.escalate),
            "repeated": self._job("repeat", self.repeat),
            "delivered": self._job("deliver", self.deliver),
        }

    # ---------------------------------------------------------------- the loop

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: jobs on schedule, plus delivery as soon as a batch queued something."""
        while not stop.is_set():
            self.scheduler.run_pending()
            if DELIVERY_WAKE.wait(self.poll_s):
                DELIVERY_WAKE.clear()
                round_ = self._job("deliver", self.deliver)
                # The wake comes just before the batch's commit (SQLAlchemy has no event after
                # it): on PostgreSQL the rows may not be visible yet, so look again a few times,
                # sooner if another batch wakes us. The 1 s job catches anything later still.
                for pause in WAKE_RETRIES_S:
                    if stop.is_set() or round_ is None or round_.claimed:
                        break
                    if DELIVERY_WAKE.wait(pause):
                        DELIVERY_WAKE.clear()
                    round_ = self._job("deliver", self.deliver)
        self.deliverer.close()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(stop,), name="klaxon-scheduler", daemon=True
        )
        thread.start()
        return thread
