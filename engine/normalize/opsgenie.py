"""Opsgenie's Webhook integration: Create fires, Close and Delete resolve, the rest is ignored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.normalize.reading import (
    ROOT,
    as_object,
    compact_json,
    opt_object,
    opt_text,
    opt_text_map,
    opt_time,
    req_text,
    text_list,
)
from engine.normalize.result import Normalized, derived_id, event, events, nothing, utc
from engine.normalize.severity import PRIORITY_SEVERITY
from engine.schema import identity_hash

SOURCE = "opsgenie"
DEFAULT_SEVERITY = "medium"  # Opsgenie's own default priority is P3
ACTIONS = {"create": "firing", "close": "resolved", "delete": "resolved"}
# Priorities arrive as P1..P5; 1..5 and Klaxon's own names are accepted too.
PRIORITY_WORDS: dict[str, str] = {
    **PRIORITY_SEVERITY,
    **{key[1:]: value for key, value in PRIORITY_SEVERITY.items()},
    **{value: value for value in PRIORITY_SEVERITY.values()},
}


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Identity is (integrationId, alert.alertId). Create's ts is `alert.createdAt` (ms),
    Close's and Delete's `alert.updatedAt` (ns). Acknowledge, AddNote, ... change no status
    and give no event, only a note."""
    body = as_object(payload, ROOT)
    at = utc(received_at)
    action = req_text(body, "action", ROOT)
    status = ACTIONS.get(action.lower())
    if status is None:
        return nothing(f"Opsgenie action {action:.40} ignored")
    alert = as_object(body.get("alert"), "alert")
    alert_id = req_text(alert, "alertId", "alert", numbers=True)
    integration = opt_text(body, "integrationId", ROOT, numbers=True) or ""
    fingerprint = identity_hash(SOURCE, integration, alert_id)

    created = opt_time(alert, "createdAt", "alert")
    updated = opt_time(alert, "updatedAt", "alert")
    ts = ((created or updated) if status == "firing" else (updated or created)) or at
    priority = opt_text(alert, "priority", "alert", numbers=True) or ""
    source = opt_object(body, "source", ROOT) or {}
    entity = opt_text(alert, "entity", "alert") or ""
    details = opt_text_map(alert, "details", "alert")
    labels = {
        **details,  # the alert's extra properties, unless they clash with the ones below
        "action": action,
        "alias": opt_text(alert, "alias", "alert", numbers=True) or "",
        "tiny_id": opt_text(alert, "tinyId", "alert", numbers=True) or "",
        "tags": ",".join(text_list(alert, "tags", "alert")),
        "teams": ",".join(text_list(alert, "teams", "alert")),
        "priority": priority,
        "entity": entity,
        "alert_source": opt_text(alert, "source", "alert") or "",
        "integration_name": opt_text(body, "integrationName", ROOT) or "",
        "source_name": opt_text(source, "name", "source") or "",
        "source_type": opt_text(source, "type", "source") or "",
    }
    updated_text = opt_text(alert, "updatedAt", "alert", numbers=True) or ""
    created_text = opt_text(alert, "createdAt", "alert", numbers=True) or ""
    return events(
        [
            event(
                # Opsgenie numbers no delivery; updatedAt (ns) tells two actions apart.
                event_id=derived_id(SOURCE, fingerprint, action, created_text, updated_text),
                ts=ts,
                source=SOURCE,
                source_id=alert_id,
                fingerprint=fingerprint,
                title=(opt_text(alert, "message", "alert") or "").strip() or alert_id,
                description=opt_text(alert, "description", "alert") or "",
                severity=PRIORITY_WORDS.get(priority.strip().lower(), DEFAULT_SEVERITY),
                status=status,
                service=entity,
                host=details.get("host", ""),
                environment=details.get("environment") or details.get("env") or "",
                labels={k: v for k, v in labels.items() if v},
                raw=compact_json(body, ROOT),
            )
        ],
        received_at=at,
    )
