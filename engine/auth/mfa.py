"""Two-factor login: TOTP (pyotp) with one-time backup codes, enforceable per team or role.

Flow: `setup` stores a new secret (encrypted) and returns it with its otpauth:// URI for an
authenticator app; `enable` takes a first code from the app, turns MFA on and returns ten
backup codes, shown once and kept only as keyed hashes. At login, a 6-digit TOTP code (this
30 s step or the ones either side, each step accepted once) or an unused backup code passes.

Enforcement: a team with `require_mfa`, or a role listed in the `auth.mfa_roles` setting,
makes MFA mandatory for its members. Such a user who has not enrolled can still log in, but
only to enrol: their Principal is `mfa_pending` and has no permission until `enable`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyotp
from sqlalchemy import Connection, delete, insert, select, update

from engine.auth import audit
from engine.auth.errors import (
    ConflictError,
    InvalidInputError,
    MfaInvalidError,
    PasswordPolicyError,
)
from engine.auth.passwords import verify_password
from engine.auth.principal import ROLES, Principal
from engine.auth.users import load_user
from engine.crypto import decrypt, encrypt, hash_token
from engine.store.db import Database
from engine.store.models import Setting, Team, TeamMember, User

ISSUER = "Klaxon"
BACKUP_CODES = 10
ROLES_SETTING = "auth.mfa_roles"


def _own(actor: Principal) -> int:
    if actor.kind != "user" or actor.user_id is None:
        raise InvalidInputError(
            "only a signed-in user can manage their own MFA", field="authorization"
        )
    return actor.user_id


def _new_backup_codes() -> tuple[list[str], list[str]]:
    """(codes to show once, their hashes to keep): 16 hex digits each, 64 bits."""
    codes = ["-".join(secrets.token_hex(2) for _ in range(4)) for _ in range(BACKUP_CODES)]
    return codes, [hash_token(f"backup:{c}") for c in codes]


def setup(db: Database, actor: Principal) -> dict[str, str]:
    """A new secret for the signed-in user; MFA is on only after `enable` with a first code."""
    user_id = _own(actor)
    secret = pyotp.random_base32()
    with db.connect() as conn:
        user = load_user(conn, user_id)
        if user.mfa_enabled:
            raise ConflictError("MFA is already enabled: disable it first to start over")
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(mfa_secret_encrypted=encrypt(secret), mfa_last_step=None)
        )
        audit.record(conn, actor, "mfa.setup", "user", user_id)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": secret, "uri": uri}


def enable(db: Database, actor: Principal, code: str) -> list[str]:
    """Turn MFA on with a first code from the app; returns the backup codes (shown once)."""
    user_id = _own(actor)
    with db.connect() as conn:
        user = load_user(conn, user_id)
        if user.mfa_enabled:
            raise ConflictError("MFA is already enabled")
        if not user.mfa_secret_encrypted:
            raise ConflictError("start with POST /api/v1/auth/mfa/setup")
        step = totp_step(decrypt(user.mfa_secret_encrypted), code, None)
        if step is None:
            raise MfaInvalidError("the code is not the one the authenticator app shows now")
        codes, hashes = _new_backup_codes()
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(mfa_enabled=True, backup_codes=hashes, mfa_last_step=step)
        )
        audit.record(conn, actor, "mfa.enable", "user", user_id)
    return codes


def disable(db: Database, actor: Principal, user_id: int, *, password: str | None = None) -> None:
    """Users turn off their own MFA with their password (not if it is required of them);
    admins reset anyone's (for a lost phone), after which the user enrols again."""
    own = actor.kind == "user" and actor.user_id == user_id
    if not own:
        actor.require("users.write")
    with db.connect() as conn:
        user = load_user(conn, user_id)
        if own:
            if not verify_password(user.password_hash, password or "")[0]:
                raise PasswordPolicyError("the password is wrong", field="password")
            if is_required(conn, user):
                raise ConflictError(
                    "MFA is required for your team or role: it cannot be turned off"
                )
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                mfa_enabled=False, mfa_secret_encrypted=None, backup_codes=[], mfa_last_step=None
            )
        )
        audit.record(conn, actor, "mfa.disable", "user", user_id)


def regenerate_backup_codes(db: Database, actor: Principal, code: str) -> list[str]:
    user_id = _own(actor)
    with db.connect() as conn:
        user = load_user(conn, user_id)
        if not user.mfa_enabled or not user.mfa_secret_encrypted:
            raise ConflictError("MFA is not enabled")
        step = totp_step(decrypt(user.mfa_secret_encrypted), code, user.mfa_last_step)
        if step is None:
            raise MfaInvalidError("the code is not the one the authenticator app shows now")
        codes, hashes = _new_backup_codes()
        conn.execute(
            update(User).where(User.id == user_id).values(backup_codes=hashes, mfa_last_step=step)
        )
        audit.record(conn, actor, "mfa.backup_codes", "user", user_id)
    return codes


# ---------------------------------------------------------------- checking codes


def totp_step(
    secret: str, code: str, last_step: int | None, now: datetime | None = None
) -> int | None:
    """The time step `code` belongs to (now or one step either side), if not used before."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = now or datetime.now(UTC)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (
            last_step is None or step > last_step
        ):
            return step
    return None


def check_second_factor(conn: Connection, user: User, code: str) -> str | None:
    """Consume a TOTP or backup code for `user` in the caller's transaction; returns "totp" or
    "backup_code", or None if the code is not valid (wrong, reused or used up)."""
    if user.mfa_secret_encrypted:
        step = totp_step(decrypt(user.mfa_secret_encrypted), code, user.mfa_last_step)
        if step is not None:
            # Compare-and-set: of two logins racing with one code, only one passes.
            done = conn.execute(
                update(User)
                .where(
                    User.id == user.id, (User.mfa_last_step.is_(None)) | (User.mfa_last_step < step)
                )
                .values(mfa_last_step=step)
            ).rowcount
            return "totp" if done else None
    digest = hash_token(f"backup:{code.strip().lower()}")
    if digest in (user.backup_codes or []) and _take_backup_code(conn, user.id, digest):
        return "backup_code"
    return None


def _take_backup_code(conn: Connection, user_id: int, digest: str) -> bool:
    """Remove one backup code, re-read under a row lock (SQLite: the write transaction is
    exclusive already), so two logins cannot both spend it."""
    current = conn.execute(
        select(User.backup_codes).where(User.id == user_id).with_for_update()
    ).scalar_one()
    if digest not in (current or []):
        return False
    conn.execute(
        update(User)
        .where(User.id == user_id)
        .values(backup_codes=[c for c in current if c != digest])
    )
    return True


# ---------------------------------------------------------------- enforcement


def required_roles(conn: Connection) -> list[str]:
    value = conn.execute(
        select(Setting.value).where(Setting.key == ROLES_SETTING)
    ).scalar_one_or_none()
    return [r for r in (value or []) if r in ROLES]


def is_required(conn: Connection, user: User) -> bool:
    """MFA is mandatory for this user: by role (setting) or by a team with require_mfa."""
    if user.role in required_roles(conn):
        return True
    stmt = (
        select(Team.id)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user.id, Team.require_mfa)
        .limit(1)
    )
    return conn.execute(stmt).first() is not None


def set_required_roles(db: Database, actor: Principal, roles: Sequence[str]) -> list[str]:
    actor.require("system.config")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInputError(
            f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}", field="roles"
        )
    wanted = [r for r in ROLES if r in roles]
    with db.connect() as conn:
        before = required_roles(conn)
        conn.execute(delete(Setting).where(Setting.key == ROLES_SETTING))
        conn.execute(
            insert(Setting).values(
                key=ROLES_SETTING, value=wanted, updated_at=datetime.now(UTC), updated_by=actor.name
            )
        )
        audit.record(
            conn,
            actor,
            "setting.update",
            "setting",
            ROLES_SETTING,
            before={"value": before},
            after={"value": wanted},
        )
    return wanted


def status(db: Database, actor: Principal) -> dict[str, Any]:
    user_id = _own(actor)
    with db.read() as conn:
        user = load_user(conn, user_id)
        return {
            "enabled": user.mfa_enabled,
            "required": is_required(conn, user),
            "backup_codes_left": len(user.backup_codes or []),
        }
