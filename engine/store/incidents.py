"""Incidents: alerts a `correlate` block grouped."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from engine.auth.principal import Principal
from engine.errors import EngineError
from engine.store.alerts import AlertQuery, list_alerts
from engine.store.db import orm
from engine.store.models import Incident


class IncidentNotFound(EngineError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"no incident with id {incident_id}")


def incident_dict(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "correlate": i.correlate,
        "key": i.key,
        "title": i.title,
        "opened_at": i.opened_at.isoformat(),
        "status": i.status,
        "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
        "severity": i.severity,
        "alert_count": i.alert_count,
    }


def list_incidents(
    conn: Connection, actor: Principal, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    actor.require("incidents.read")
    stmt = select(Incident).order_by(Incident.opened_at.desc(), Incident.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Incident.status == status)
    return [incident_dict(i) for i in orm(conn).scalars(stmt)]


def get_incident(conn: Connection, actor: Principal, incident_id: int) -> dict[str, Any]:
    actor.require("incidents.read")
    found = orm(conn).scalars(select(Incident).where(Incident.id == incident_id)).one_or_none()
    if found is None:
        raise IncidentNotFound(incident_id)
    alerts, _ = list_alerts(
        conn,
        actor,
        AlertQuery(incident_id=incident_id, sort="created_at", descending=False),
        limit=1000,
    )
    return {**incident_dict(found), "alerts": alerts}
