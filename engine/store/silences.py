"""Silences made by people (API or web app): a matcher over alerts and a time window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from dsl import check_rules
from engine.auth import audit
from engine.auth.principal import Principal
from engine.errors import EngineError
from engine.store.db import orm
from engine.store.models import Silence
from engine.store.rules import silence_block


class SilenceError(EngineError):
    """A silence that cannot be: names the field and carries the rule-language errors."""

    def __init__(
        self, field: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors or []


class SilenceNotFound(EngineError):
    def __init__(self, silence_id: int) -> None:
        super().__init__(f"no silence with id {silence_id}")


@dataclass(frozen=True)
class SilenceSpec:
    matcher: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    during: str | None = None
    comment: str = ""


def silence_dict(s: Silence, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    end = s.expired_at or s.ends_at
    return {
        "id": s.id,
        "matcher": s.matcher,
        "starts_at": s.starts_at.isoformat() if s.starts_at else None,
        "ends_at": s.ends_at.isoformat() if s.ends_at else None,
        "during": s.during,
        "comment": s.comment,
        "created_by": s.created_by,
        "created_at": s.created_at.isoformat(),
        "expired_at": s.expired_at.isoformat() if s.expired_at else None,
        "active": (s.starts_at is None or s.starts_at <= now) and (end is None or now < end),
        "block": silence_block(s),
    }


def validate(spec: SilenceSpec) -> None:
    """The silence must compile as a `silence` block; errors point into the matcher or `during`."""
    if not spec.matcher.strip():
        raise SilenceError("matcher", 'a silence needs a matcher, e.g. service == "db"')
    if spec.starts_at and spec.ends_at and spec.ends_at <= spec.starts_at:
        raise SilenceError("ends_at", "ends_at must be after starts_at")
    probe = Silence(
        id=0,
        matcher=spec.matcher,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        during=spec.during,
        comment=spec.comment,
    )
    errors = check_rules(silence_block(probe), "silence")
    if errors:
        first = errors[0]
        field = "during" if first.source_line.lstrip().startswith("during") else "matcher"
        raise SilenceError(field, f"{field}: {first.full_message}", [e.to_dict() for e in errors])


def list_silences(
    conn: Connection, actor: Principal, *, active: bool | None = None
) -> list[dict[str, Any]]:
    actor.require("alerts.read")
    rows = [silence_dict(s) for s in orm(conn).scalars(select(Silence).order_by(Silence.id.desc()))]
    return [r for r in rows if active is None or r["active"] == active]


def create_silence(conn: Connection, actor: Principal, spec: SilenceSpec) -> dict[str, Any]:
    actor.require("silences.write")
    validate(spec)
    values = {
        "matcher": spec.matcher,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "during": spec.during,
        "comment": spec.comment,
    }
    new_id = conn.execute(
        insert(Silence)
        .values(**values, created_by=actor.name, created_at=datetime.now(UTC))
        .returning(Silence.id)
    ).scalar_one()
    audit.record(
        conn,
        actor,
        "silence.create",
        "silence",
        new_id,
        after={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()},
    )
    return silence_dict(orm(conn).scalars(select(Silence).where(Silence.id == new_id)).one())


def expire_silence(conn: Connection, actor: Principal, silence_id: int) -> dict[str, Any]:
    actor.require("silences.write")
    row = orm(conn).scalars(select(Silence).where(Silence.id == silence_id)).one_or_none()
    if row is None:
        raise SilenceNotFound(silence_id)
    now = datetime.now(UTC)
    conn.execute(update(Silence).where(Silence.id == silence_id).values(expired_at=now))
    audit.record(
        conn, actor, "silence.expire", "silence", silence_id, after={"expired_at": now.isoformat()}
    )
    return silence_dict(orm(conn).scalars(select(Silence).where(Silence.id == silence_id)).one())


def similar_matcher(alert: dict[str, Any]) -> str:
    """A matcher for "silence similar": the alert's rule and its key fields."""
    parts = [f'rule == "{alert["rule"]}"']
    for name, value in sorted((alert.get("key") or {}).items()):
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        field = name if name.isidentifier() else f'labels["{name}"]'
        parts.append(f'{field} == "{escaped}"')
    return " and ".join(parts)
