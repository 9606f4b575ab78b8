"""Personal data: export everything Klaxon holds about a user, and erase a user.

Erasure pseudonymizes: the user's email and name are replaced by `erased-user-ID` wherever
they were written (alerts acknowledged_by / resolved_by / assignee, alert history actors and
notes, created_by columns, notification targets, audit actors and before/after values), the
IP address and user agent of their audit entries are dropped, and the account is emptied
(no email, name, password, MFA, contacts, teams or sessions) but kept, so ids still join.

The audit chain stays verifiable (engine/auth/audit.py): the erasure first appends its own
entry (`privacy.erase`, naming only the user id and the pseudonym), then rewrites the affected
entries in place, keeping each one's chain hash and marking it with `redacted_by` (the
erasure entry) and `redacted_hash` (the keyed hash of its new content). `klaxon audit verify`
accepts a rewritten entry only if its content matches `redacted_hash` and `redacted_by` names
a later erasure entry; the chain links themselves are never recomputed. All of it happens in
one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, cast, delete, func, or_, select, update

from engine.auth import audit
from engine.auth.audit_search import entry_dict
from engine.auth.errors import ConflictError
from engine.auth.principal import Principal
from engine.auth.users import keep_an_admin, load_user, teams_of, user_dict
from engine.store.db import Database, orm
from engine.store.models import (
    Alert,
    AlertHistory,
    ApiKey,
    AuditEntry,
    Channel,
    Notification,
    RefreshToken,
    RuleVersion,
    Setting,
    Silence,
    TeamMember,
    User,
)

# Columns that hold who did something, by email (exact match).
_ACTOR_COLUMNS = (
    (Alert, "acknowledged_by"),
    (Alert, "resolved_by"),
    (Alert, "assignee"),
    (AlertHistory, "actor"),
    (Silence, "created_by"),
    (RuleVersion, "created_by"),
    (ApiKey, "created_by"),
    (Channel, "created_by"),
    (Setting, "updated_by"),
    (Notification, "target"),
)


def pseudonym(user_id: int) -> str:
    return f"erased-user-{user_id}"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


# ---------------------------------------------------------------- export


def export_user(db: Database, actor: Principal, user_id: int) -> dict[str, Any]:
    """Everything about one user, as JSON-ready data (their own, or any for users.write)."""
    if not (actor.kind == "user" and actor.user_id == user_id):
        actor.require("users.write")
    with db.read() as conn:
        user = load_user(conn, user_id)
        email = user.email
        s = orm(conn)
        alerts = s.scalars(
            select(Alert)
            .where(
                or_(
                    Alert.acknowledged_by == email,
                    Alert.resolved_by == email,
                    Alert.assignee == email,
                )
            )
            .order_by(Alert.id)
        ).all()
        history = s.scalars(
            select(AlertHistory).where(AlertHistory.actor == email).order_by(AlertHistory.id)
        ).all()
        entries = s.scalars(select(AuditEntry).where(_about(user)).order_by(AuditEntry.id)).all()
        sessions = s.scalars(
            select(RefreshToken).where(RefreshToken.user_id == user_id).order_by(RefreshToken.id)
        ).all()
        created = {
            f"{model.__tablename__}.{column}": [
                r.id if hasattr(r, "id") else str(r)
                for r in s.scalars(select(model).where(getattr(model, column) == email))
            ]
            for model, column in _ACTOR_COLUMNS
            if model not in (Alert, AlertHistory) and hasattr(model, "id")
        }
        return {
            "exported_at": _iso(datetime.now(UTC)),
            "user": {
                **user_dict(user, teams_of(conn, [user_id])[user_id]),
                "tz": user.tz,
                "quiet_hours": user.quiet_hours,
                "contact_channels": user.contact_channels,
                "backup_codes_left": len(user.backup_codes or []),
            },
            "sessions": [
                {
                    "session_id": t.family,
                    "issued_at": _iso(t.issued_at),
                    "expires_at": _iso(t.expires_at),
                    "rotated_at": _iso(t.rotated_at),
                    "revoked_at": _iso(t.revoked_at),
                }
                for t in sessions
            ],
            "alerts": [
                {
                    "id": a.id,
                    "title": a.title,
                    "status": a.status,
                    "acknowledged_by_user": a.acknowledged_by == email,
                    "acknowledged_at": _iso(a.acknowledged_at),
                    "resolved_by_user": a.resolved_by == email,
                    "resolved_at": _iso(a.resolved_at),
                    "assigned_to_user": a.assignee == email,
                }
                for a in alerts
            ],
            "alert_history": [
                {
                    "id": h.id,
                    "alert_id": h.alert_id,
                    "at": _iso(h.at),
                    "action": h.action,
                    "note": h.note,
                    "details": h.details,
                }
                for h in history
            ],
            "audit": [entry_dict(e) for e in entries],
            "records_created": created,
        }


def _about(user: User) -> Any:
    """Audit entries by the user, about the user, or mentioning their email."""
    email = user.email
    return or_(
        AuditEntry.actor == email,
        (AuditEntry.resource == "user") & (AuditEntry.resource_id == str(user.id)),
        AuditEntry.resource_id == email,
        cast(AuditEntry.before, String).contains(email, autoescape=True),
        cast(AuditEntry.after, String).contains(email, autoescape=True),
    )


# ---------------------------------------------------------------- erasure


def erase_user(db: Database, actor: Principal, user_id: int) -> dict[str, Any]:
    """Pseudonymize a user everywhere (see the module docstring); returns what was changed."""
    actor.require("users.write")
    alias = pseudonym(user_id)
    counts: dict[str, int] = {}
    with db.connect() as conn:
        audit.lock_chain(conn)
        user = load_user(conn, user_id)
        if user.erased_at is not None:
            raise ConflictError(f"user {user_id} was already erased", field="id")
        if user.role == "admin" and user.is_active:
            keep_an_admin(conn, user_id)
        email, name = user.email, user.name
        for model, column in _ACTOR_COLUMNS:
            col = getattr(model, column)
            n = conn.execute(update(model).where(col == email).values({column: alias})).rowcount
            if n:
                counts[f"{model.__tablename__}.{column}"] = n
        counts["alert_history.note"] = conn.execute(
            update(AlertHistory)
            .where(AlertHistory.note.contains(email, autoescape=True))
            .values(note=func.replace(AlertHistory.note, email, alias))
        ).rowcount
        counts["alert_history.details"] = _rewrite_json(
            conn, AlertHistory, "details", email, name, alias
        )
        redactions = _plan_audit(conn, user, alias)
        erase_id = audit.record(
            conn,
            actor,
            audit.ERASE_ACTION,
            "user",
            user_id,
            after={"pseudonym": alias, "audit_entries": len(redactions)},
        )
        for row_id, fields, digest in redactions:
            conn.execute(
                update(AuditEntry)
                .where(AuditEntry.id == row_id)
                .values(**fields, redacted_by=erase_id, redacted_hash=digest)
            )
        counts["audit_log"] = len(redactions)
        counts["sessions"] = conn.execute(
            delete(RefreshToken).where(RefreshToken.user_id == user_id)
        ).rowcount
        counts["teams"] = conn.execute(
            delete(TeamMember).where(TeamMember.user_id == user_id)
        ).rowcount
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                email=f"{alias}@erased.invalid",
                name="",
                password_hash="",
                mfa_enabled=False,
                mfa_secret_encrypted=None,
                backup_codes=[],
                mfa_last_step=None,
                contact_channels=[],
                quiet_hours={},
                is_active=False,
                failed_logins=0,
                locked_until=None,
                last_login_at=None,
                erased_at=datetime.now(UTC),
            )
        )
    return {
        "user_id": user_id,
        "pseudonym": alias,
        "audit_entry": erase_id,
        "changed": {k: v for k, v in counts.items() if v},
    }


def _replace(value: Any, email: str, name: str, alias: str, key: str | None = None) -> Any:
    """`value` with the email replaced inside strings, and the name where it is a whole value."""
    if isinstance(value, str):
        if (
            name
            and value == name
            and key in (None, "name", "actor", "assignee", "by", "user", "created_by")
        ):
            return alias
        return value.replace(email, alias)
    if isinstance(value, dict):
        return {k: _replace(v, email, name, alias, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, email, name, alias, key) for v in value]
    return value


def _rewrite_json(
    conn: Connection, model: Any, column: str, email: str, name: str, alias: str
) -> int:
    col = getattr(model, column)
    rows = conn.execute(
        select(model.id, col).where(cast(col, String).contains(email, autoescape=True))
    ).all()
    changed = 0
    for row_id, value in rows:
        new = _replace(value, email, name, alias)
        if new != value:
            conn.execute(update(model).where(model.id == row_id).values({column: new}))
            changed += 1
    return changed


def _plan_audit(conn: Connection, user: User, alias: str) -> list[tuple[int, dict[str, Any], str]]:
    """For each audit entry to rewrite: its id, its new fields and their keyed hash."""
    out = []
    rows = conn.execute(select(AuditEntry).where(_about(user)).order_by(AuditEntry.id)).all()
    for row in rows:
        own = row.actor == user.email
        fields = {
            "actor": alias if own else row.actor,
            "ip": None if own else row.ip,
            "user_agent": None if own else row.user_agent,
            "resource_id": alias if row.resource_id == user.email else row.resource_id,
            "before": _replace(row.before, user.email, user.name, alias),
            "after": _replace(row.after, user.email, user.name, alias),
        }
        current = {k: getattr(row, k) for k in fields}
        if fields == current:
            continue
        content = audit.hashed_fields({**dict(row._mapping), **fields})
        out.append((int(row.id), fields, audit.entry_hash(row.prev_hash, content)))
    return out
