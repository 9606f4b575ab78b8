"""Finding and exporting audit entries: filters, sorting, CSV and JSON.

CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR)
get a leading apostrophe (OWASP's advice for CSV injection); the JSON export is exact.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, cast, func, or_, select
from sqlalchemy.types import String

from engine.auth.errors import InvalidInputError
from engine.auth.principal import Principal
from engine.store.db import Database, orm
from engine.store.models import AuditEntry

AUDIT_SORTS = {
    "id": AuditEntry.id,
    "at": AuditEntry.at,
    "actor": AuditEntry.actor,
    "action": AuditEntry.action,
    "resource": AuditEntry.resource,
}
COLUMNS = (
    "id",
    "at",
    "actor",
    "ip",
    "user_agent",
    "action",
    "resource",
    "resource_id",
    "before",
    "after",
    "prev_hash",
    "hash",
    "redacted_by",
)
FORMATS = ("csv", "json")


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit log; lists mean any of. `action` values ending in `.*` match a
    prefix (`auth.*`)."""

    actor: Sequence[str] = ()
    action: Sequence[str] = ()
    resource: Sequence[str] = ()
    resource_id: str | None = None
    ip: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "id"
    descending: bool = True
    limit: int = 100
    offset: int = 0

    def validate(self) -> None:
        if self.sort not in AUDIT_SORTS:
            raise InvalidInputError(
                f"cannot sort by {self.sort!r}; choose one of {', '.join(AUDIT_SORTS)}",
                field="sort",
            )
        if not 1 <= self.limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000", field="limit")
        if self.offset < 0:
            raise InvalidInputError("offset must not be negative", field="offset")
        if self.since and self.until and self.since > self.until:
            raise InvalidInputError("'since' is after 'until'", field="since")


def _filtered(query: AuditQuery) -> Select[Any]:
    conds: list[ColumnElement[bool]] = []
    if query.actor:
        conds.append(AuditEntry.actor.in_(list(query.actor)))
    exact = [a for a in query.action if not a.endswith(".*")]
    prefixes = [a[:-1] for a in query.action if a.endswith(".*")]
    if exact or prefixes:
        # startswith(autoescape) escapes % and _ so a prefix is only ever a prefix.
        conds.append(
            or_(
                AuditEntry.action.in_(exact),
                *[AuditEntry.action.startswith(p, autoescape=True) for p in prefixes],
            )
        )
    if query.resource:
        conds.append(AuditEntry.resource.in_(list(query.resource)))
    if query.resource_id is not None:
        conds.append(AuditEntry.resource_id == query.resource_id)
    if query.ip is not None:
        conds.append(AuditEntry.ip == query.ip)
    if query.since:
        conds.append(AuditEntry.at >= query.since)
    if query.until:
        conds.append(AuditEntry.at < query.until)
    if query.q:
        # Bound and escaped: the text is data, and % or _ in it match only themselves.
        text = query.q.lower()
        columns = (
            AuditEntry.actor,
            AuditEntry.action,
            func.coalesce(AuditEntry.resource_id, ""),
            cast(AuditEntry.before, String),
            cast(AuditEntry.after, String),
        )
        conds.append(or_(*[func.lower(c).contains(text, autoescape=True) for c in columns]))
    stmt = select(AuditEntry)
    return stmt.where(and_(*conds)) if conds else stmt


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "actor": e.actor,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "action": e.action,
        "resource": e.resource,
        "resource_id": e.resource_id,
        "before": e.before,
        "after": e.after,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "redacted_by": e.redacted_by,
    }


def search_audit(
    db: Database, actor: Principal, query: AuditQuery | None = None
) -> list[dict[str, Any]]:
    actor.require("audit.read")
    query = query or AuditQuery()
    query.validate()
    column = AUDIT_SORTS[query.sort]
    order = (
        (column.desc(), AuditEntry.id.desc())
        if query.descending
        else (column.asc(), AuditEntry.id.asc())
    )
    stmt = _filtered(query).order_by(*order).limit(query.limit).offset(query.offset)
    with db.read() as conn:
        return [entry_dict(e) for e in orm(conn).scalars(stmt)]


def iter_audit(
    db: Database, actor: Principal, query: AuditQuery | None = None, *, chunk: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every matching entry in id order, read a chunk at a time (for exports of any size).
    The permission and the filters are checked at the call, before the first row is read."""
    actor.require("audit.read")
    query = query or AuditQuery()
    query.validate()
    return _iterate(db, query, chunk)


def _iterate(db: Database, query: AuditQuery, chunk: int) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        stmt = _filtered(query).where(AuditEntry.id > last).order_by(AuditEntry.id).limit(chunk)
        with db.read() as conn:
            rows = [entry_dict(e) for e in orm(conn).scalars(stmt)]
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = (
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        if isinstance(value, dict | list)
        else str(value)
    )
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
        if buf.tell() > 64_000:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def json_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    first = True
    for row in rows:
        yield (b"" if first else b",\n") + orjson.dumps(row)
        first = False
    yield b"]\n"


def export(
    db: Database, actor: Principal, fmt: str, query: AuditQuery | None = None
) -> Iterator[bytes]:
    """The matching entries as CSV or JSON, in id order, as a stream of bytes."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}; choose csv or json", field="format")
    rows = iter_audit(db, actor, query)
    if fmt == "json":
        return json_chunks(rows)
    return (line.encode() for line in csv_lines(rows))
