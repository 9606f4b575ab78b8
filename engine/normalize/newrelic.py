"""New Relic workflow webhooks (default template) and legacy channel payloads → one event."""

from __future__ import annotations

import re
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
    opt_text,
    opt_text_map,
    opt_time,
    req_text,
    text_list,
)
from engine.normalize.result import Normalized, derived_id, event, events, utc
from engine.normalize.severity import map_severity
from engine.schema import identity_hash

SOURCE = "newrelic"
DEFAULT_SEVERITY = "medium"
PRIORITY_SEVERITY = {"critical": "critical", "high": "high", "medium": "medium", "low": "low"}
LEGACY_SEVERITY = {"critical": "critical", "warning": "medium", "info": "info"}
WORKFLOW_STATES = {
    "created": "firing",
    "activated": "firing",
    "acknowledged": "firing",
    "closed": "resolved",
}
LEGACY_STATES = {"open": "firing", "acknowledged": "firing", "closed": "resolved"}
_HOST_TYPES = {"host", "server", "infrastructure"}
_ACCOUNT = re.compile(r"/accounts/(\d+)(?:/|$)")


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """A body with `incident_id` or `current_state` is the legacy channel's; else a workflow's."""
    body = as_object(payload, ROOT)
    at = utc(received_at)
    if "incident_id" in body or "current_state" in body:
        record = _legacy(body, at)
    else:
        record = _workflow(body, at)
    return events([record], received_at=at)


def _workflow(body: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    issue = req_text(body, "id", ROOT, numbers=True)
    account = _account(opt_text(body, "issueUrl", ROOT))
    fingerprint = identity_hash(SOURCE, account, "issue", issue)
    state = opt_text(body, "state", ROOT)
    trigger = opt_text(body, "trigger", ROOT) or ""
    if state is None:
        status = "resolved" if trigger == "INCIDENT_CLOSED" else "firing"
    elif state.lower() in WORKFLOW_STATES:
        status = WORKFLOW_STATES[state.lower()]
    else:
        known = ", ".join(s.upper() for s in WORKFLOW_STATES)
        raise fail(f"'state' must be one of {known}, got {state!r:.40}", "state")
    updated = opt_text(body, "updatedAt", ROOT, numbers=True) or ""
    ts = opt_time(body, "updatedAt", ROOT) or opt_time(body, "createdAt", ROOT) or at
    entities = text_list(body, "impactedEntities", ROOT)
    policies = text_list(body, "alertPolicyNames", ROOT)
    conditions = text_list(body, "alertConditionNames", ROOT)
    sources = text_list(body, "sources", ROOT)
    labels = {
        "issue_url": opt_text(body, "issueUrl", ROOT) or "",
        "state": state or "",
        "trigger": trigger,
        "impacted_entities": ",".join(entities),
        "alert_policy_names": ",".join(policies),
        "alert_condition_names": ",".join(conditions),
        "sources": ",".join(sources),
        "workflow_name": opt_text(body, "workflowName", ROOT) or "",
        "is_correlated": _flag(body, "isCorrelated"),
        "total_incidents": opt_text(body, "totalIncidents", ROOT, numbers=True) or "",
        "account_id": account,
    }
    description = "; ".join(
        part
        for part in (
            f"conditions: {', '.join(conditions)}" if conditions else "",
            f"policies: {', '.join(policies)}" if policies else "",
        )
        if part
    )
    return event(
        event_id=derived_id(SOURCE, fingerprint, state or "", trigger, updated),
        ts=ts,
        source=SOURCE,
        source_id=issue,
        fingerprint=fingerprint,
        title=opt_text(body, "title", ROOT) or (conditions[0] if conditions else issue),
        description=description,
        severity=map_severity(
            opt_text(body, "priority", ROOT), PRIORITY_SEVERITY, DEFAULT_SEVERITY
        ),
        status=status,
        service=entities[0] if entities else "",
        labels={k: v for k, v in labels.items() if v},
        raw=compact_json(body, ROOT),
    )


def _legacy(body: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    incident = req_text(body, "incident_id", ROOT, numbers=True)
    account = _account(opt_text(body, "incident_url", ROOT)) or (
        opt_text(body, "account_id", ROOT, numbers=True) or ""
    )
    fingerprint = identity_hash(SOURCE, account, "incident", incident)
    state = req_text(body, "current_state", ROOT)
    if state.lower() not in LEGACY_STATES:
        known = ", ".join(LEGACY_STATES)
        raise fail(f"'current_state' must be one of {known}, got {state!r:.40}", "current_state")
    stamp = opt_text(body, "timestamp", ROOT, numbers=True) or ""
    policy = opt_text(body, "policy_name", ROOT) or ""
    condition = opt_text(body, "condition_name", ROOT) or ""
    labels = {
        "incident_url": opt_text(body, "incident_url", ROOT) or "",
        "policy_name": policy,
        "condition_name": condition,
        "account_name": opt_text(body, "account_name", ROOT) or "",
        "runbook_url": opt_text(body, "runbook_url", ROOT) or "",
        "current_state": state,
        "account_id": account,
    }
    service = host = ""
    targets = opt_list(body, "targets", ROOT) or []
    if targets:
        path = join("targets", 0)
        target = as_object(targets[0], path)
        name = opt_text(target, "name", path) or ""
        kind = opt_text(target, "type", path) or ""
        if kind.lower() in _HOST_TYPES:
            host = name
        else:
            service = name
        # the target's own labels, unless they clash with the ones above
        labels = {**opt_text_map(target, "labels", path), **labels}
        labels["target_type"] = kind
        labels["target_product"] = opt_text(target, "product", path) or ""
    title = f"{condition} ({policy})" if condition and policy else condition or policy
    return event(
        event_id=derived_id(SOURCE, fingerprint, state, stamp),
        ts=opt_time(body, "timestamp", ROOT) or at,
        source=SOURCE,
        source_id=incident,
        fingerprint=fingerprint,
        title=title or f"incident {incident}",
        description=opt_text(body, "details", ROOT) or "",
        severity=map_severity(opt_text(body, "severity", ROOT), LEGACY_SEVERITY, DEFAULT_SEVERITY),
        status=LEGACY_STATES[state.lower()],
        service=service,
        host=host,
        labels={k: v for k, v in labels.items() if v},
        raw=compact_json(body, ROOT),
    )


def _account(url: str | None) -> str:
    found = _ACCOUNT.search(url or "")
    return found.group(1) if found else ""


def _flag(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    return opt_text(body, key, ROOT) or ""
