"""The audit trail: every mutation, append-only, each entry chained to the one before by hash.

Each entry's `hash` is HMAC-SHA256, keyed from KLAXON_SECRET_KEY, over the previous entry's hash
and the entry's canonical JSON (sorted keys). Keyed, so someone who can write to the database
but does not hold the secret key cannot edit an entry and recompute the chain after it.
`verify` walks the chain in id order and names the first entry that does not hold.

Erasure (engine/auth/privacy.py) pseudonymizes entries without breaking the chain: an entry it
rewrites keeps its `hash` (so the next entry's `prev_hash` still links), and gets
`redacted_by` (the id of the erasure's own entry, appended first) and `redacted_hash` (the
keyed hash of the rewritten content). `verify` checks such an entry against `redacted_hash`
and checks that `redacted_by` names a later erasure entry.

What the chain cannot show by itself: entries removed from the end. `klaxon audit verify`
prints the head hash; keep it somewhere else to detect that too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from engine.auth.principal import Principal
from engine.crypto import signing_key
from engine.store.db import Database
from engine.store.models import AuditEntry

GENESIS = "0" * 64
ERASE_ACTION = "privacy.erase"


def _chain_key() -> bytes:
    # Keyed on what the secret key comes from, so a changed environment (tests) is seen.
    return _chain_key_for(
        os.environ.get("KLAXON_SECRET_KEY", ""), os.environ.get("KLAXON_DATA_DIR", "")
    )


@lru_cache(maxsize=8)
def _chain_key_for(_secret: str, _data_dir: str) -> bytes:
    return hmac.new(signing_key(), b"klaxon audit chain", hashlib.sha256).digest()


def entry_hash(prev_hash: str, entry: dict[str, Any], key: bytes | None = None) -> str:
    """HMAC-SHA256 over the previous hash and the entry's canonical JSON (sorted keys)."""
    body = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS, default=str)
    return hmac.new(key or _chain_key(), prev_hash.encode() + body, hashlib.sha256).hexdigest()


def hashed_fields(row: Any) -> dict[str, Any]:
    """The fields an entry's hash covers, from a model object, a row or a dict."""
    source = row if isinstance(row, dict) else row._mapping if hasattr(row, "_mapping") else None

    def get(k: str) -> Any:
        return source.get(k) if source is not None else getattr(row, k)

    at = get("at")
    return {
        "at": at.astimezone(UTC).isoformat() if isinstance(at, datetime) else at,
        "actor": get("actor"),
        "ip": get("ip"),
        "user_agent": get("user_agent"),
        "action": get("action"),
        "resource": get("resource"),
        "resource_id": get("resource_id"),
        "before": get("before"),
        "after": get("after"),
    }


# Built once: SQLAlchemy then reuses the compiled statements (a third of a record's cost).
_LAST_HASH = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
_INSERT = insert(AuditEntry).returning(AuditEntry.id)


def lock_chain(conn: Connection) -> None:
    """Serialize chain writers. PostgreSQL: a transaction-scoped advisory lock (re-entrant in
    one transaction); SQLite has one writer at a time anyway (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7264001)")


def record(
    conn: Connection,
    actor: Principal,
    action: str,
    resource: str,
    resource_id: str | int | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> int:
    """Append one entry and return its id. Callers run it in the transaction of the change it
    records, so the change and its entry are committed together or not at all."""
    lock_chain(conn)
    prev = conn.execute(_LAST_HASH).scalar_one_or_none() or GENESIS
    entry = {
        "at": datetime.now(UTC),
        "actor": actor.name,
        "ip": actor.ip,
        "user_agent": actor.user_agent,
        "action": action,
        "resource": resource,
        "resource_id": None if resource_id is None else str(resource_id),
        "before": jsonable(before),
        "after": jsonable(after),
    }
    digest = entry_hash(prev, hashed_fields(entry))
    return int(conn.execute(_INSERT, {**entry, "prev_hash": prev, "hash": digest}).scalar_one())


def record_refusal(
    db: Database,
    actor: Principal,
    where: str,
    *,
    permission: str | None = None,
    reason: str = "",
    **details: Any,
) -> None:
    """An `access.denied` entry, in a transaction of its own: the refused change did not happen.

    The API writes one for every 401 and 403 (with `where` the path, and the method); the web
    app calls it when a service raises PermissionDenied (with `where` the page)."""
    after = {"path": where, "permission": permission, "reason": reason, **details}
    with db.connect() as conn:
        record(conn, actor, "access.denied", "route", where[:128], after=after)


def jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the database gives back for `value` (JSON types only), so hashes agree."""
    if value is None:
        return None
    out: dict[str, Any] = orjson.loads(orjson.dumps(value, default=str))
    return out


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`: how many entries held, and the first that did not."""

    checked: int
    head: str
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": self.head,
            "broken_id": self.broken_id,
            "reason": self.reason or None,
        }


def verify(db: Database, *, chunk: int = 5000) -> Verification:
    """Walk the whole chain in id order; stop at the first entry that does not hold."""
    key = _chain_key()
    with db.read() as conn:
        erasures = set(
            conn.execute(select(AuditEntry.id).where(AuditEntry.action == ERASE_ACTION)).scalars()
        )
    prev, last_id, checked = GENESIS, 0, 0
    while True:
        with db.read() as conn:
            rows = conn.execute(
                select(AuditEntry)
                .where(AuditEntry.id > last_id)
                .order_by(AuditEntry.id)
                .limit(chunk)
            ).all()
        if not rows:
            return Verification(checked, prev)
        for row in rows:
            problem = _check(row, prev, key, erasures)
            if problem:
                return Verification(checked, prev, int(row.id), problem)
            prev, last_id = row.hash, row.id
            checked += 1


def _check(row: Any, prev: str, key: bytes, erasures: set[int]) -> str:
    if row.prev_hash != prev:
        return (
            "its prev_hash is not the hash of the entry before it: "
            "an entry was removed, inserted or changed"
        )
    computed = entry_hash(row.prev_hash, hashed_fields(row), key)
    if row.redacted_by is None:
        if not hmac.compare_digest(computed, row.hash):
            return "its content does not match its hash: it was changed after it was written"
        return ""
    if row.redacted_by not in erasures or row.redacted_by <= row.id:
        by = row.redacted_by
        return f"it is marked as pseudonymized by entry {by}, which is not a later erasure"
    if not hmac.compare_digest(computed, row.redacted_hash or ""):
        return (
            "its pseudonymized content does not match the hash its erasure gave it: "
            "it was changed since"
        )
    return ""
