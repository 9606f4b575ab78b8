"""The analytics layer's errors: a bad query names its field; a broken snapshot says what."""

from __future__ import annotations

from engine.errors import EngineError


class AnalyticsError(EngineError):
    """Analytics cannot answer: the snapshot cannot be written or read, a job failed."""


class AnalyticsQueryError(AnalyticsError):
    """A filter or parameter that cannot be used; `field` names it (a 422 in the API)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class JobNotFoundError(AnalyticsError):
    """No backtest or preview job with that id (finished ones are kept for a while)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r} (finished jobs are kept for an hour)")
        self.job_id = job_id
