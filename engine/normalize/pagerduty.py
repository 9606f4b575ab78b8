"""PagerDuty webhooks v3 (`incident.*` events) → one event; other event types are ignored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.normalize.reading import (
    ROOT,
    as_object,
    compact_json,
    fail,
    join,
    opt_list,
    opt_object,
    opt_text,
    opt_time,
    req_text,
    url_host,
)
from engine.normalize.result import (
    Normalized,
    delivery_id,
    derived_id,
    event,
    events,
    nothing,
    utc,
)
from engine.normalize.severity import PRIORITY_SEVERITY, map_severity
from engine.schema import identity_hash

SOURCE = "pagerduty"
URGENCY_SEVERITY = {"high": "high", "low": "low"}
DEFAULT_SEVERITY = "high"
DATA_STATUS = {"triggered": "firing", "acknowledged": "firing", "resolved": "resolved"}


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Identity is (account host of `event.data.html_url`, `event.data.id`); `event.id` is
    the delivery's idempotency key. `incident.resolved` resolves; any other incident event
    fires unless `event.data.status` says the incident is resolved (a note on a closed one)."""
    body = as_object(payload, ROOT)
    at = utc(received_at)
    if "event" not in body and "messages" in body:
        raise fail("PagerDuty webhooks v2 are not supported: subscribe with v3", "event")
    ev = as_object(body.get("event"), "event")
    event_type = req_text(ev, "event_type", "event")
    if not event_type.startswith("incident.") or opt_text(ev, "resource_type", "event") not in (
        None,
        "incident",
    ):
        return nothing(f"PagerDuty event {event_type} ignored")
    data = as_object(ev.get("data"), "event.data")
    incident = req_text(data, "id", "event.data")
    url = opt_text(data, "html_url", "event.data")
    fingerprint = identity_hash(SOURCE, url_host(url), incident)

    state = opt_text(data, "status", "event.data")
    if state is not None and state not in DATA_STATUS:
        known = ", ".join(DATA_STATUS)
        raise fail(
            f"'event.data.status' must be one of {known}, got {state!r:.40}", "event.data.status"
        )
    resolved = event_type == "incident.resolved" or state == "resolved"
    status = "resolved" if resolved else "firing"

    priority = opt_object(data, "priority", "event.data")
    summary = opt_text(priority, "summary", "event.data.priority") if priority else None
    urgency = opt_text(data, "urgency", "event.data")
    if summary and summary.lower() in PRIORITY_SEVERITY:
        severity = PRIORITY_SEVERITY[summary.lower()]
    else:
        severity = map_severity(urgency, URGENCY_SEVERITY, DEFAULT_SEVERITY)

    labels = {
        "event_type": event_type,
        "incident_status": state or "",
        "incident_number": opt_text(data, "number", "event.data", numbers=True) or "",
        "html_url": url or "",
        "urgency": urgency or "",
        "priority": summary or "",
        "escalation_policy": _summary(data, "escalation_policy", "event.data"),
        "agent": _summary(ev, "agent", "event"),
        "teams": ",".join(_summaries(data, "teams", "event.data")),
        "assignees": ",".join(_summaries(data, "assignees", "event.data")),
    }
    delivery = opt_text(ev, "id", "event", numbers=True)
    occurred = opt_text(ev, "occurred_at", "event") or ""
    return events(
        [
            event(
                event_id=delivery_id(SOURCE, delivery)
                if delivery
                else derived_id(SOURCE, fingerprint, event_type, occurred),
                ts=opt_time(ev, "occurred_at", "event") or at,
                source=SOURCE,
                source_id=incident,
                fingerprint=fingerprint,
                title=opt_text(data, "title", "event.data") or incident,
                description=opt_text(data, "description", "event.data") or "",
                severity=severity,
                status=status,
                service=_summary(data, "service", "event.data"),
                labels={k: v for k, v in labels.items() if v},
                raw=compact_json(body, ROOT),
            )
        ],
        received_at=at,
    )


def _summary(parent: Mapping[str, Any], key: str, path: str) -> str:
    """The `summary` of a reference object (`{"type": "service_reference", "summary": ...}`)."""
    ref = opt_object(parent, key, path)
    return (opt_text(ref, "summary", join(path, key)) or "") if ref else ""


def _summaries(parent: Mapping[str, Any], key: str, path: str) -> list[str]:
    out = []
    for i, item in enumerate(opt_list(parent, key, path) or []):
        where = join(join(path, key), i)
        text = opt_text(as_object(item, where), "summary", where)
        if text:
            out.append(text)
    return out
