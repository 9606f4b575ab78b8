"""Long analytics runs (backtests, silence previews) as jobs a client polls for progress.

    job = JOBS.submit("backtest", lambda progress: backtest(..., progress=progress))
    JOBS.get(job.id).to_dict()   # {"id", "kind", "status", "progress", "done", "total", "result"}

Jobs run in a small thread pool of the process that took the request (an API replica), and are
kept for an hour after they finish; poll the replica that answered.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.analytics.errors import JobNotFoundError

log = logging.getLogger("klaxon.analytics.jobs")

KEEP_S = 3600.0
MAX_JOBS = 100
WORKERS = 2


@dataclass
class Job:
    id: str
    kind: str
    status: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int = 0
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    def report(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        return round(self.done / self.total, 4) if self.total else 0.0

    def to_dict(self, *, with_result: bool = True) -> dict[str, Any]:
        out = {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress,
            "done": self.done,
            "total": self.total,
            "created_at": self.created_at,
        }
        if self.error is not None:
            out["error"] = self.error
        if with_result and self.status == "done":
            out["result"] = self.result
        return out


class Jobs:
    def __init__(self, workers: int = WORKERS) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="klaxon-job")

    def submit(
        self,
        kind: str,
        fn: Callable[[Callable[[int, int], None]], Any],
        describe: Callable[[Exception], dict[str, Any]] | None = None,
    ) -> Job:
        """Run fn(progress) in the pool; `describe` turns its exception into the job's error."""
        job = Job(id=uuid.uuid4().hex[:16], kind=kind)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job

        def run() -> None:
            job.status = "running"
            try:
                job.result = fn(job.report)
                job.status = "done"
            except Exception as err:
                job.error = describe(err) if describe else {"message": str(err)}
                job.status = "failed"
                if describe is None:
                    log.exception("%s job %s failed", kind, job.id)
            finally:
                job.finished = time.monotonic()

        self._pool.submit(run)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job finishes (tests and synchronous callers)."""
        deadline = time.monotonic() + timeout
        job = self.get(job_id)
        while job.status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.02)
        return job

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.finished is not None and now - job.finished > KEEP_S:
                del self._jobs[job_id]
        while len(self._jobs) >= MAX_JOBS:
            oldest = min(
                (j for j in self._jobs.values() if j.finished is not None),
                key=lambda j: j.finished or 0,
                default=None,
            )
            if oldest is None:
                break
            del self._jobs[oldest.id]


JOBS = Jobs()
