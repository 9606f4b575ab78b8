"""What a normalizer returns: the canonical events of one delivery, and what the API must do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from engine.schema import (
    EVENT_SCHEMA,
    empty,
    events_frame,
    identity_hash,
    normalize_record,
    validate,
)


@dataclass(frozen=True, eq=False)  # a DataFrame has no truth value: compare `events` directly
class Normalized:
    """The events of one delivery (EVENT_SCHEMA exactly), plus anything the API must act on."""

    events: pl.DataFrame
    confirm_url: str | None = None  # SNS SubscriptionConfirmation: the API layer GETs this URL
    note: str | None = None  # why a delivery gave no events, e.g. "Opsgenie action AddNote ignored"


def utc(value: datetime) -> datetime:
    """An aware UTC time; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event(
    *,
    event_id: str,
    ts: datetime,
    source: str,
    source_id: str,
    fingerprint: str,
    title: str,
    severity: str,
    status: str,
    labels: Mapping[str, str],
    raw: str,
    description: str = "",
    service: str = "",
    environment: str = "",
    host: str = "",
    value: float | None = None,
    kind: str = "alert",
) -> dict[str, Any]:
    """One canonical event as a record; every column is named so none is forgotten."""
    return {
        "event_id": event_id,
        "ts": ts,
        "kind": kind,
        "source": source,
        "source_id": source_id,
        "fingerprint": fingerprint,
        "title": title,
        "description": description,
        "severity": severity,
        "status": status,
        "service": service,
        "environment": environment,
        "host": host,
        "value": value,
        "labels": dict(labels),
        "raw": raw,
    }


def events(records: Sequence[Mapping[str, Any]], *, received_at: datetime) -> Normalized:
    """Records from `event` → a Normalized whose frame has passed `validate(EVENT_SCHEMA)`."""
    at = utc(received_at)
    rows = [normalize_record(rec, received_at=at) for rec in records]
    return Normalized(events=validate(events_frame(rows), EVENT_SCHEMA, "normalized events"))


def nothing(note: str, *, confirm_url: str | None = None) -> Normalized:
    """A delivery that carries no event (a subscription handshake, an ignored action)."""
    return Normalized(events=empty(EVENT_SCHEMA), confirm_url=confirm_url, note=note)


def delivery_id(source: str, key: str) -> str:
    """The event id of a delivery the tool numbers itself (SNS MessageId, PagerDuty event.id)."""
    return f"{source}:{key}"


def derived_id(source: str, *parts: str) -> str:
    """The event id of a delivery the tool does not number: a hash of what makes it distinct."""
    return f"{source}:{identity_hash(*parts)}"
