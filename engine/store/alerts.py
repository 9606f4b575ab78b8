"""Alerts for people: finding them (filters, sorting, cursors) and acting on them.

Every action checks the actor's permission, moves the alert along its lifecycle
(active → acknowledged → investigating → resolved, plus suppressed), and records the change
in `alert_history` and the audit trail, in the caller's transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, case, func, insert, or_, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.errors import EngineError
from engine.store.db import orm
from engine.store.models import Alert, AlertHistory, Notification

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
RESOLUTIONS = ("fixed", "false_positive", "duplicate", "wont_fix", "expected", "other")
SORTS = {
    "created_at": Alert.created_at,
    "last_seen": Alert.last_seen,
    "resolved_at": Alert.resolved_at,
    "occurrences": Alert.occurrences,
    "severity": case(SEVERITY_RANK, value=Alert.severity, else_=-1),
    "status": Alert.status,
    "title": Alert.title,
    "id": Alert.id,
}


class AlertNotFound(EngineError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"no alert with id {alert_id}")
        self.alert_id = alert_id


class InvalidTransition(EngineError):
    """The alert is not in a status this action applies to."""


class BadQuery(EngineError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def alert_dict(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "rule": a.rule,
        "key": orjson.loads(a.key),
        "fingerprint": a.fingerprint,
        "title": a.title,
        "description": a.description,
        "severity": a.severity,
        "status": a.status,
        "source": a.source,
        "service": a.service,
        "environment": a.environment,
        "host": a.host,
        "team": a.team,
        "labels": a.labels,
        "event_labels": a.event_labels,
        "value": a.value,
        "occurrences": a.occurrences,
        "first_seen": _iso(a.first_seen),
        "last_seen": _iso(a.last_seen),
        "created_at": _iso(a.created_at),
        "acknowledged_at": _iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "investigating_at": _iso(a.investigating_at),
        "resolved_at": _iso(a.resolved_at),
        "resolved_by": a.resolved_by,
        "resolution": a.resolution,
        "assignee": a.assignee,
        "escalation_level": a.escalation_level,
        "notify": a.notify,
        "escalate": a.escalate,
        "muted_by": a.muted_by,
        "incident_id": a.incident_id,
        "last_event_id": a.last_event_id,
        "updated_at": _iso(a.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


# ---------------------------------------------------------------- finding


@dataclass(frozen=True)
class AlertQuery:
    """Filters of the alert list; every field optional. Lists mean any of."""

    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    service: Sequence[str] = ()
    environment: Sequence[str] = ()
    team: Sequence[str] = ()
    source: Sequence[str] = ()
    rule: Sequence[str] = ()
    assignee: Sequence[str] = ()
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    open_only: bool = False
    incident_id: int | None = None
    ids: Sequence[int] = ()
    sort: str = "created_at"
    descending: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.sort not in SORTS:
            raise BadQuery(
                "sort", f"cannot sort by {self.sort!r}; choose one of {', '.join(SORTS)}"
            )
        for name, allowed in (
            (
                "status",
                ("active", "acknowledged", "investigating", "resolved", "suppressed", "open"),
            ),
            ("severity", tuple(SEVERITY_RANK)),
        ):
            for value in getattr(self, name):
                if value not in allowed:
                    raise BadQuery(
                        name, f"unknown {name} {value!r}; choose from {', '.join(allowed)}"
                    )
        if self.since and self.until and self.since > self.until:
            raise BadQuery("since", "'since' is after 'until'")


def _filtered(query: AlertQuery) -> Select[Any]:
    stmt = select(Alert)
    conds = []
    statuses = [s for s in query.status if s != "open"]
    if "open" in query.status:
        conds.append(or_(Alert.is_open, Alert.status.in_(statuses)) if statuses else Alert.is_open)
    elif statuses:
        conds.append(Alert.status.in_(statuses))
    for name in ("severity", "service", "environment", "team", "source", "rule", "assignee"):
        values = list(getattr(query, name))
        if values:
            conds.append(getattr(Alert, name).in_(values))
    if query.open_only:
        conds.append(Alert.is_open)
    if query.incident_id is not None:
        conds.append(Alert.incident_id == query.incident_id)
    if query.ids:
        conds.append(Alert.id.in_(list(query.ids)))
    if query.since:
        conds.append(Alert.created_at >= query.since)
    if query.until:
        conds.append(Alert.created_at < query.until)
    if query.q:
        # Bound parameters, never string building; `autoescape` makes `%` and `_` match themselves.
        text = query.q.lower()
        columns = (Alert.title, Alert.description, Alert.service, Alert.host, Alert.rule, Alert.key)
        conds.append(or_(*(func.lower(c).contains(text, autoescape=True) for c in columns)))
    if conds:
        stmt = stmt.where(and_(*conds))
    return stmt


def encode_cursor(value: Any, alert_id: int) -> str:
    if isinstance(value, datetime):
        value = {"dt": value.astimezone(UTC).isoformat()}
    return base64.urlsafe_b64encode(orjson.dumps([value, alert_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, alert_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if isinstance(value, dict) and "dt" in value:
            value = datetime.fromisoformat(value["dt"])
        return value, int(alert_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadQuery("cursor", "the cursor is not one this API gave out") from None


def list_alerts(
    conn: Connection,
    actor: Principal,
    query: AlertQuery,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of alerts and the cursor of the next page (None at the end)."""
    actor.require("alerts.read")
    query.validate()
    if not 1 <= limit <= 1000:
        raise BadQuery("limit", "limit must be between 1 and 1000")
    column = SORTS[query.sort]
    stmt = _filtered(query)
    if cursor:
        value, last_id = decode_cursor(cursor)
        if query.descending:
            stmt = stmt.where(or_(column < value, and_(column == value, Alert.id < last_id)))
        else:
            stmt = stmt.where(or_(column > value, and_(column == value, Alert.id > last_id)))
    order = (column.desc(), Alert.id.desc()) if query.descending else (column.asc(), Alert.id.asc())
    rows = orm(conn).scalars(stmt.order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    nxt = None
    if len(rows) > limit and page:
        last = page[-1]
        sort_value = (
            SEVERITY_RANK.get(last.severity, -1)
            if query.sort == "severity"
            else getattr(last, query.sort)
        )
        nxt = encode_cursor(sort_value, last.id)
    return [alert_dict(a) for a in page], nxt


def count_alerts(conn: Connection, actor: Principal, query: AlertQuery) -> int:
    actor.require("alerts.read")
    query.validate()
    sub = _filtered(query).subquery()
    return int(conn.execute(select(func.count()).select_from(sub)).scalar_one())


def get_alert(conn: Connection, actor: Principal, alert_id: int) -> dict[str, Any]:
    actor.require("alerts.read")
    return alert_dict(_load(conn, alert_id))


def _load(conn: Connection, alert_id: int) -> Alert:
    row = orm(conn).scalars(select(Alert).where(Alert.id == alert_id)).one_or_none()
    if row is None:
        raise AlertNotFound(alert_id)
    return row


def history(conn: Connection, actor: Principal, alert_id: int) -> list[dict[str, Any]]:
    actor.require("alerts.read")
    _load(conn, alert_id)
    rows = orm(conn).scalars(
        # In the order Klaxon learned of each change; `at` is when it happened (event time).
        select(AlertHistory).where(AlertHistory.alert_id == alert_id).order_by(AlertHistory.id)
    )
    return [
        {
            "id": h.id,
            "at": _iso(h.at),
            "action": h.action,
            "actor": h.actor,
            "from_status": h.from_status,
            "to_status": h.to_status,
            "note": h.note,
            "details": h.details,
        }
        for h in rows
    ]


def notifications_of(conn: Connection, actor: Principal, alert_id: int) -> list[dict[str, Any]]:
    actor.require("alerts.read")
    rows = orm(conn).scalars(
        select(Notification).where(Notification.alert_id == alert_id).order_by(Notification.id)
    )
    return [
        {
            "id": n.id,
            "transition": n.transition,
            "target": n.target,
            "channel": n.channel,
            "status": n.status,
            "attempts": n.attempts,
            "last_error": n.last_error,
            "created_at": _iso(n.created_at),
            "sent_at": _iso(n.sent_at),
        }
        for n in rows
    ]


# ---------------------------------------------------------------- acting

# action → (statuses it applies to, status it leaves)
_LIFECYCLE: dict[str, tuple[tuple[str, ...], str | None]] = {
    "acknowledge": (("active", "suppressed"), "acknowledged"),
    "investigate": (("active", "suppressed", "acknowledged"), "investigating"),
    "resolve": (("active", "suppressed", "acknowledged", "investigating"), "resolved"),
    "assign": (("active", "suppressed", "acknowledged", "investigating"), None),
    "escalate": (("active", "suppressed", "acknowledged", "investigating"), None),
    "note": (("active", "suppressed", "acknowledged", "investigating", "resolved"), None),
}
ACTIONS = tuple(_LIFECYCLE)


def act(
    conn: Connection,
    actor: Principal,
    alert_id: int,
    action: str,
    *,
    note: str | None = None,
    reason: str | None = None,
    assignee: str | None = None,
) -> dict[str, Any]:
    """Apply one action to one alert; return the alert as it is now."""
    if action not in _LIFECYCLE:
        raise BadQuery("action", f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    actor.require("alerts.write")
    alert = _load(conn, alert_id)
    allowed, target = _LIFECYCLE[action]
    if alert.status not in allowed:
        raise InvalidTransition(f"alert {alert_id} is {alert.status}: it cannot be {_past(action)}")
    now = datetime.now(UTC)
    before = alert_dict(alert)
    values: dict[str, Any] = {"updated_at": now}
    details: dict[str, Any] = {}
    if action == "acknowledge":
        values |= {"status": target, "acknowledged_at": now, "acknowledged_by": actor.name}
    elif action == "investigate":
        values |= {"status": target, "investigating_at": now}
        if alert.acknowledged_at is None:  # starting to investigate acknowledges too (MTTA)
            values |= {"acknowledged_at": now, "acknowledged_by": actor.name}
    elif action == "resolve":
        reason = reason or "fixed"
        if reason not in RESOLUTIONS:
            raise BadQuery(
                "reason", f"unknown reason {reason!r}; choose one of {', '.join(RESOLUTIONS)}"
            )
        values |= {
            "status": "resolved",
            "is_open": False,
            "resolved_at": now,
            "resolved_by": actor.name,
            "resolution": reason,
        }
        details["reason"] = reason
    elif action == "assign":
        if not assignee:
            raise BadQuery("assignee", "say who to assign it to")
        values["assignee"] = assignee
        details["assignee"] = assignee
    elif action == "escalate":
        values |= {"escalation_level": alert.escalation_level + 1, "escalated_at": now}
        details["level"] = alert.escalation_level + 1
    elif action == "note" and (not note or not note.strip()):
        raise BadQuery("note", "a note needs some text")
    conn.execute(update(Alert).where(Alert.id == alert_id).values(**values))
    conn.execute(
        insert(AlertHistory).values(
            alert_id=alert_id,
            at=now,
            action=_past(action) if action != "note" else "note",
            actor=actor.name,
            from_status=alert.status,
            to_status=values.get("status", alert.status),
            note=note,
            details=details,
        )
    )
    after = alert_dict(_load(conn, alert_id))
    audit.record(
        conn,
        actor,
        f"alert.{action}",
        "alert",
        alert_id,
        before=_brief(before),
        after=_brief(after),
    )
    return after


def _brief(a: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "status",
        "assignee",
        "escalation_level",
        "resolution",
        "acknowledged_by",
        "resolved_by",
    )
    return {k: a.get(k) for k in keys}


def _past(action: str) -> str:
    return {
        "acknowledge": "acknowledged",
        "investigate": "investigating",
        "resolve": "resolved",
        "assign": "assigned",
        "escalate": "escalated",
        "note": "noted",
    }[action]


def act_many(
    conn: Connection, actor: Principal, ids: Sequence[int], action: str, **kwargs: Any
) -> list[dict[str, Any]]:
    """The same action on many alerts; each gets its own result (ok, or why not)."""
    actor.require("alerts.write")
    results: list[dict[str, Any]] = []
    for alert_id in ids:
        try:
            act(conn, actor, alert_id, action, **kwargs)
            results.append({"id": alert_id, "ok": True})
        except (AlertNotFound, InvalidTransition, BadQuery) as err:
            results.append({"id": alert_id, "ok": False, "error": str(err)})
    return results
