"""Prometheus Alertmanager's webhook (version 4) → one canonical event per `alerts[]` item."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.normalize.labelset import labels_fingerprint, read_alert, url_labels
from engine.normalize.reading import ROOT, as_object, in_item, join, req_list
from engine.normalize.result import Normalized, derived_id, event, events, utc
from engine.schema import identity_hash

SOURCE = "prometheus"
_URLS = ("generatorURL",)


def normalize(
    payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
) -> Normalized:
    """Each alert keeps its own status (never the group's); ts is startsAt, or endsAt if resolved.

    The fingerprint is Alertmanager's own label-set fingerprint (computed the same way when
    absent), not scoped by `externalURL`: the peers of an HA pair send the same alert.
    """
    body = as_object(payload, ROOT)
    alerts = req_list(body, "alerts", ROOT)
    at = utc(received_at)
    records = []
    for i, item in enumerate(alerts):
        path = join("alerts", i)
        with in_item(i):
            alert = read_alert(item, path, received_at=at)
            source_id = alert.given_fingerprint or labels_fingerprint(alert.labels)
            fingerprint = identity_hash(SOURCE, source_id)
            records.append(
                event(
                    # Alertmanager numbers nothing: a retry and a repeat notification are the same.
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
                    labels=alert.event_labels(url_labels(item, path, _URLS)),
                    raw=alert.raw,
                )
            )
    return events(records, received_at=at)
