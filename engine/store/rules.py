"""The rules file in the store: versions, the current one, diffs, and API silences as blocks."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select

from dsl import check_rules
from dsl.errors import DslErrors
from dsl.printer import quote
from engine.auth import audit
from engine.auth.principal import Principal
from engine.store.db import orm
from engine.store.models import RuleVersion, Silence


@dataclass(frozen=True)
class RulesVersion:
    version: int
    text: str
    checksum: str
    created_at: datetime
    created_by: str
    comment: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "text": self.text,
            "checksum": self.checksum,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "comment": self.comment,
        }


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _row(r: RuleVersion) -> RulesVersion:
    return RulesVersion(r.version, r.text, r.checksum, r.created_at, r.created_by, r.comment)


def current(conn: Connection) -> RulesVersion | None:
    row = (
        orm(conn).scalars(select(RuleVersion).order_by(RuleVersion.version.desc()).limit(1)).first()
    )
    return _row(row) if row else None


def get(conn: Connection, version: int) -> RulesVersion | None:
    row = orm(conn).scalars(select(RuleVersion).where(RuleVersion.version == version)).first()
    return _row(row) if row else None


def versions(conn: Connection, limit: int = 100) -> list[RulesVersion]:
    rows = (
        orm(conn)
        .scalars(select(RuleVersion).order_by(RuleVersion.version.desc()).limit(limit))
        .all()
    )
    return [_row(r) for r in rows]


def save(
    conn: Connection, text: str, *, actor: str, comment: str = "", path: str = "rules.klx"
) -> RulesVersion:
    """Store a new version if it compiles (DslErrors otherwise); unchanged text is not a version."""
    errors = check_rules(text, path)
    if errors:
        raise DslErrors(errors)
    latest = current(conn)
    if latest is not None and latest.checksum == checksum(text):
        return latest
    number = (latest.version if latest else 0) + 1
    conn.execute(
        insert(RuleVersion).values(
            version=number,
            text=text,
            checksum=checksum(text),
            comment=comment,
            created_by=actor,
            created_at=datetime.now(UTC),
        )
    )
    saved = get(conn, number)
    assert saved is not None
    return saved


def update_rules(
    conn: Connection, actor: Principal, text: str, comment: str = ""
) -> tuple[RulesVersion, bool]:
    """Replace the rules file if it compiles (DslErrors otherwise); returns (version, changed)."""
    actor.require("rules.write")
    before = current(conn)
    saved = save(conn, text, actor=actor.name, comment=comment)
    changed = before is None or saved.version != before.version
    if changed:
        audit.record(
            conn,
            actor,
            "rules.update",
            "rules",
            saved.version,
            before={"version": before.version, "checksum": before.checksum} if before else None,
            after={"version": saved.version, "checksum": saved.checksum, "comment": comment},
        )
    return saved, changed


def ensure_rules(conn: Connection, default_file: str | Path) -> RulesVersion:
    """The current rules; in an empty store, the default rules file becomes version 1."""
    latest = current(conn)
    if latest is not None:
        return latest
    return save(
        conn,
        Path(default_file).read_text(encoding="utf-8"),
        actor="klaxon",
        comment="default rules",
    )


def diff(old: str, new: str, old_name: str = "a", new_name: str = "b") -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
    )


# ---------------------------------------------------------------- API silences


def silence_block(s: Silence) -> str:
    """A silence made through the API, as the `silence` block the engine runs."""
    lines = [
        f"silence api_silence_{s.id} {quote(s.comment or 'silence ' + str(s.id))}",
        f"  when {s.matcher}",
    ]
    if s.starts_at:
        lines.append(f"  from {_instant(s.starts_at)}")
    ends = (
        s.expired_at if s.expired_at and (not s.ends_at or s.expired_at < s.ends_at) else s.ends_at
    )
    if ends:
        lines.append(f"  until {_instant(ends)}")
    if s.during:
        lines.append(f"  during {s.during}")
    lines.append("end")
    return "\n".join(lines)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def active_silences(conn: Connection, now: datetime) -> list[Silence]:
    """Silences that can still mute something: not ended, not expired long ago."""
    rows = orm(conn).scalars(select(Silence).order_by(Silence.id)).all()
    return [s for s in rows if not _over(s, now)]


def _over(s: Silence, now: datetime) -> bool:
    end = s.expired_at or s.ends_at
    return end is not None and end < now and s.during is None


def composed_text(conn: Connection, now: datetime) -> tuple[str, str]:
    """The rules the worker runs: the current file plus every live API silence.

    Returns (text, identity); the identity changes whenever either part does.
    """
    rules = current(conn)
    text = rules.text if rules else ""
    silences = active_silences(conn, now)
    if silences:
        text = (
            text.rstrip()
            + "\n\n# silences made through the API\n\n"
            + "\n\n".join(silence_block(s) for s in silences)
            + "\n"
        )
    count = conn.execute(select(func.count()).select_from(Silence)).scalar_one()
    identity = f"{rules.version if rules else 0}:{checksum(text)}:{count}"
    return text, identity
