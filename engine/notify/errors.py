"""The notifier's base error. Delivery failures are data (notification rows), never these."""

from __future__ import annotations

from engine.errors import EngineError


class NotifyError(EngineError):
    """A notification setting that cannot be accepted; names the field and an HTTP status."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ChannelUrlError(NotifyError):
    """Apprise does not accept a channel's URL (unknown scheme, missing token, bad address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


class NotifyConfigError(NotifyError):
    """A channel, policy, schedule or quiet-hours value that is not valid."""


class NotifyNotFoundError(NotifyError):
    """No channel, policy, schedule, team or user by that name."""

    status = 404


class NotifyConflictError(NotifyError):
    """A name that is already taken."""

    status = 409
