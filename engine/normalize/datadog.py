"""Datadog's Webhooks integration (the recommended template in docs/sources.md) → one event."""

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
    opt_object,
    opt_text,
    opt_time,
)
from engine.normalize.result import Normalized, delivery_id, derived_id, event, events, utc
from engine.normalize.severity import PRIORITY_SEVERITY, map_severity
from engine.schema import identity_hash

SOURCE = "datadog"

# $ALERT_TYPE when the monitor has no $ALERT_PRIORITY. `success` comes with Recovered: a
# resolve carries no severity of its own (the engine keeps the alert's), so it gets the default.
ALERT_TYPE_SEVERITY: dict[str, str] = {"error": "high", "warning": "medium", "info": "info"}
DEFAULT_SEVERITY = "medium"

# Leading "[P2]", "[Triggered on {service:api}]", "[Recovered]" ... in $EVENT_TITLE.
_PREFIX = re.compile(r"\s*\[([^\[\]]*)\]")
_PRIORITY = re.compile(r"[Pp][1-5]")
_TRANSITION = re.compile(
    r"(?P<transition>(?:Re-)?(?:Triggered|Recovered|Warn|No Data)|Renotify)"
    r"(?: on \{(?P<group>.*)\})?"
)
_MARKDOWN = re.compile(r"^\s*%%%\s*(.*?)\s*%%%\s*$", re.DOTALL)

# Keys of the recommended template copied into labels as they are.
_LABEL_KEYS = (
    "event_type",
    "alert_type",
    "alert_transition",
    "alert_query",
    "alert_metric",
    "alert_cycle_key",
    "monitor_id",
    "scopes",
    "url",
    "tags",
)


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Identity is (org.id, monitor_id, scopes); `id` ($ID) is per notification: idempotency only.

    The template is the sender's to edit, so every key may be missing; what the default
    template puts in the title (transition, group, priority) is read from there instead.
    """
    body = as_object(payload, ROOT)
    at = utc(received_at)
    prefix = _title_prefix(opt_text(body, "title", ROOT) or "")
    title = prefix["title"]
    monitor = opt_text(body, "monitor_id", ROOT, numbers=True)
    scopes = _sorted_scope(opt_text(body, "scopes", ROOT) or prefix["group"])
    if monitor is None and not title:
        raise fail(
            "'monitor_id' (or at least 'title') is required to identify the monitor", "monitor_id"
        )
    org = opt_object(body, "org", ROOT)
    org_id = (opt_text(org, "id", "org", numbers=True) if org else None) or ""
    source_id = f"{monitor}:{scopes}" if monitor is not None else f"{title}:{scopes}"
    fingerprint = identity_hash(SOURCE, org_id, source_id)

    transition = opt_text(body, "alert_transition", ROOT) or prefix["transition"]
    alert_type = (opt_text(body, "alert_type", ROOT) or "").lower()
    resolved = "recovered" in transition.lower() if transition else alert_type == "success"
    status = "resolved" if resolved else "firing"

    priority = opt_text(body, "severity", ROOT) or prefix["priority"]
    if priority and _PRIORITY.fullmatch(priority.strip()):
        severity = map_severity(priority, PRIORITY_SEVERITY, DEFAULT_SEVERITY)
    else:
        severity = ALERT_TYPE_SEVERITY.get(alert_type, DEFAULT_SEVERITY)

    date = opt_text(body, "date", ROOT, numbers=True)
    updated = opt_text(body, "last_updated", ROOT, numbers=True)
    ts = opt_time(body, "date", ROOT) or opt_time(body, "last_updated", ROOT) or at
    delivery = opt_text(body, "id", ROOT, numbers=True)

    tags = _tags(opt_text(body, "tags", ROOT) or "")
    scope_tags = _tags(scopes)
    labels = {**scope_tags, **tags}
    for key in _LABEL_KEYS:
        value = opt_text(body, key, ROOT, numbers=True)
        if value:
            labels[key] = value
    if priority:
        labels["priority"] = priority
    if org_id:
        labels["org_id"] = org_id
    org_name = opt_text(org, "name", "org") if org else None
    if org_name:
        labels["org_name"] = org_name

    return events(
        [
            event(
                event_id=delivery_id(SOURCE, delivery)
                if delivery
                else derived_id(SOURCE, fingerprint, status, date or "", updated or ""),
                ts=ts,
                source=SOURCE,
                source_id=source_id,
                fingerprint=fingerprint,
                title=title,
                description=_description(opt_text(body, "body", ROOT) or ""),
                severity=severity,
                status=status,
                service=labels.get("service", ""),
                environment=labels.get("env") or labels.get("environment") or "",
                host=opt_text(body, "hostname", ROOT) or labels.get("host", ""),
                labels=labels,
                raw=compact_json(body, ROOT),
            )
        ],
        received_at=at,
    )


def _title_prefix(title: str) -> dict[str, str]:
    """Split "[P2] [Triggered on {service:api}] Error monitor" into its parts."""
    out = {"priority": "", "transition": "", "group": "", "title": title.strip()}
    rest = title
    while found := _PREFIX.match(rest):
        inner = found.group(1).strip()
        if _PRIORITY.fullmatch(inner):
            out["priority"] = inner
        elif step := _TRANSITION.fullmatch(inner):
            out["transition"] = step["transition"]
            out["group"] = step["group"] or ""
        else:
            break  # a bracket that belongs to the monitor's own name
        rest = rest[found.end() :]
        out["title"] = rest.strip()
    return out


def _sorted_scope(scope: str) -> str:
    """`env:prod,service:api` in one order whatever order Datadog lists the group in."""
    return ",".join(sorted(part.strip() for part in scope.split(",") if part.strip()))


def _tags(text: str) -> dict[str, str]:
    """`monitor,service:api,env:prod` → {service: api, env: prod}; bare tags stay in `tags`."""
    out: dict[str, str] = {}
    for tag in text.split(","):
        key, sep, value = tag.strip().partition(":")
        if sep and key and key not in out:
            out[key] = value
    return out


def _description(body: str) -> str:
    found = _MARKDOWN.match(body)
    return found.group(1) if found else body.strip()
