"""The generic JSON webhook: canonical events as docs/sources.md describes, one or a batch."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dsl.fields import EVENT_KINDS, STATUSES
from engine.normalize.reading import (
    ROOT,
    as_object,
    canonical_json,
    compact_json,
    fail,
    in_item,
    join,
    opt_number,
    opt_text,
    opt_time,
    scalar_text,
    text_map,
)
from engine.normalize.result import Normalized, derived_id, event, events, utc
from engine.normalize.severity import LABEL_SEVERITY

SOURCE = "webhook"
DEFAULT_KIND = "alert"
DEFAULT_SEVERITY = "medium"
TEXT_FIELDS = (
    "source",
    "source_id",
    "fingerprint",
    "title",
    "description",
    "service",
    "environment",
    "host",
)
# Read as the canonical columns; every other top-level key of an item becomes a label.
KNOWN_FIELDS = frozenset(
    (*TEXT_FIELDS, "ts", "kind", "severity", "status", "value", "labels", "event_id", "id")
)
# Klaxon's own columns: a sender cannot set them, and they do not become labels either.
IGNORED_FIELDS = frozenset(("received_at", "raw"))


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """One event object, a JSON array of them, or `{"events": [...]}`."""
    at = utc(received_at)
    if isinstance(payload, list):
        items, base = payload, ""
    else:
        body = as_object(payload, ROOT)
        if "events" in body:
            events_value = body["events"]
            if not isinstance(events_value, list):
                raise fail("'events' must be a JSON array of events", "events")
            items, base = events_value, "events"
        else:
            return events([_item(body, "", at)], received_at=at)
    records = []
    for i, item in enumerate(items):
        with in_item(i):
            records.append(_item(item, join(base or ROOT, i), at))
    return events(records, received_at=at)


def _item(value: Any, path: str, at: datetime) -> dict[str, Any]:
    item = as_object(value, path or ROOT)
    text = {name: opt_text(item, name, path, numbers=True) or "" for name in TEXT_FIELDS}
    kind = _choice(item, "kind", path, EVENT_KINDS, DEFAULT_KIND)
    status = _choice(item, "status", path, STATUSES, "firing")
    severity = _severity(item, path)
    ts = opt_time(item, "ts", path) or at  # no ts: the time Klaxon received it
    labels = {}
    for key, extra in item.items():
        name = str(key)
        if name not in KNOWN_FIELDS and name not in IGNORED_FIELDS:
            labels[name] = scalar_text(extra, join(path, name))
    given = item.get("labels")
    if given is not None:
        labels.update(text_map(given, join(path, "labels")))
    event_id = opt_text(item, "event_id", path, numbers=True) or opt_text(
        item, "id", path, numbers=True
    )
    return event(
        # No id: the item itself is the key, so a retried post gives the same event.
        event_id=event_id or derived_id(SOURCE, canonical_json(item, path or ROOT)),
        ts=ts,
        source=text["source"] or SOURCE,
        source_id=text["source_id"],
        fingerprint=text["fingerprint"],  # empty: hash of source, title, service, env, host
        title=text["title"],
        description=text["description"],
        severity=severity,
        status=status,
        service=text["service"],
        environment=text["environment"],
        host=text["host"],
        value=opt_number(item, "value", path),
        labels=labels,
        raw=compact_json(item, path or ROOT),
        kind=kind,
    )


def _choice(
    item: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...], default: str
) -> str:
    value = opt_text(item, key, path)
    if value is None:
        return default
    if value.lower() not in allowed:
        where = join(path, key)
        raise fail(f"'{where}' must be one of {', '.join(allowed)}, got {value!r:.40}", where)
    return value.lower()


def _severity(item: Mapping[str, Any], path: str) -> str:
    value = opt_text(item, "severity", path)
    if value is None:
        return DEFAULT_SEVERITY
    found = LABEL_SEVERITY.get(value.strip().lower())
    if found is None:
        where = join(path, "severity")
        names = "info, low, medium, high, critical"
        raise fail(f"'{where}' must be one of {names} (or a synonym), got {value!r:.40}", where)
    return found
