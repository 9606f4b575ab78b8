"""Grafana unified alerting's webhook contact point → one canonical event per `alerts[]` item."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.normalize.labelset import labels_fingerprint, read_alert, url_labels
from engine.normalize.reading import (
    ROOT,
    as_object,
    in_item,
    join,
    opt_object,
    opt_text,
    req_list,
    to_number,
)
from engine.normalize.result import Normalized, derived_id, event, events, utc
from engine.schema import identity_hash

SOURCE = "grafana"
_URLS = ("generatorURL", "silenceURL", "dashboardURL", "panelURL", "imageURL")
VALUE_PREFIX = "value_"
# Grafana 9: "[ var='B0' metric='Value' labels={instance=a} value=24 ], [ var='C' ... value=1 ]"
_VAR = re.compile(r"var='(?P<var>[^']*)'(?P<rest>.*?)(?=var='|\Z)", re.DOTALL)
_VALUE = re.compile(r"\bvalue=([^\s\],]+)")


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Each alert keeps its own status; identity is (externalURL, orgId, alerts[].fingerprint).

    The deprecated top-level `title`, `state` and `message` are never read (the documented
    example's `message` even names other alerts).
    """
    body = as_object(payload, ROOT)
    alerts = req_list(body, "alerts", ROOT)
    instance = opt_text(body, "externalURL", ROOT) or ""
    org = opt_text(body, "orgId", ROOT, numbers=True) or ""
    at = utc(received_at)
    records = []
    for i, item in enumerate(alerts):
        path = join("alerts", i)
        with in_item(i):
            alert = read_alert(item, path, received_at=at)
            values = _values(as_object(item, path), path)
            source_id = alert.given_fingerprint or labels_fingerprint(alert.labels)
            fingerprint = identity_hash(SOURCE, instance, org, source_id)
            extra = url_labels(item, path, _URLS)
            extra.update({VALUE_PREFIX + ref: repr(v) for ref, v in values.items()})
            records.append(
                event(
                    event_id=derived_id(SOURCE, fingerprint, alert.status, alert.times),
                    ts=alert.ts,
                    source=SOURCE,
                    source_id=source_id,
                    fingerprint=fingerprint,
                    title=alert.title,
                    description=alert.description,
                    severity=alert.severity,
                    status=alert.status,
                    service=alert.service,
                    environment=alert.environment,
                    host=alert.host,
                    # The first refId in order (query A, reduce B, threshold C → B): the
                    # threshold expression, last by convention, is only 0 or 1.
                    value=values[min(values)] if values else None,
                    labels=alert.event_labels(extra),
                    raw=alert.raw,
                )
            )
    return events(records, received_at=at)


def _values(alert: Mapping[str, Any], path: str) -> dict[str, float]:
    """refId → value from `values` (newer Grafana), else parsed from `valueString` (Grafana 9)."""
    values = opt_object(alert, "values", path)
    out: dict[str, float] = {}
    if values is not None:
        for ref, raw in values.items():
            if raw is None:
                continue
            number = to_number(raw, join(join(path, "values"), str(ref)))
            if math.isfinite(number):
                out[str(ref)] = number
        return out
    text = opt_text(alert, "valueString", path)
    for found in _VAR.finditer(text or ""):
        numbers = _VALUE.findall(found["rest"])
        if not numbers:
            continue
        try:
            number = float(numbers[-1])  # labels={...} may hold a label named value
        except ValueError:
            continue
        if math.isfinite(number):
            out[found["var"]] = number
    return out
