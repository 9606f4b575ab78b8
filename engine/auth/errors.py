"""Errors of accounts and sessions; each carries the HTTP status and the field it is about."""

from __future__ import annotations

from engine.errors import EngineError


class AuthError(EngineError):
    """Base of account and session errors. `status` and `field` tell the API how to answer."""

    status = 400
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class InvalidInputError(AuthError):
    """A value the caller sent is not acceptable (bad email, unknown role, ...)."""

    status = 422


class PasswordPolicyError(InvalidInputError):
    """The password does not meet the policy; the message says which rule."""

    field = "password"


class NotFoundError(AuthError):
    status = 404


class ConflictError(AuthError):
    """Already exists (an email, a team name)."""

    status = 409


class LoginError(AuthError):
    """Wrong email or password: one message for both, so accounts cannot be discovered."""

    status = 401


class AccountLockedError(AuthError):
    """Too many failed logins: the account waits `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MfaRequiredError(AuthError):
    """The password was right and the account has MFA: send a TOTP or backup code."""

    status = 401
    field = "totp"


class MfaInvalidError(AuthError):
    status = 401
    field = "totp"


class TokenError(AuthError):
    """An access or refresh token that is expired, revoked, reused or not ours."""

    status = 401
