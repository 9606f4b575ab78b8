"""Source normalizers: each tool's webhook body → canonical events (docs/sources.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from engine.errors import EngineError
from engine.normalize import (
    cloudwatch,
    datadog,
    grafana,
    newrelic,
    opsgenie,
    pagerduty,
    prometheus,
    webhook,
)
from engine.normalize.reading import ROOT, parse_json
from engine.normalize.result import Normalized

__all__ = ["SOURCES", "Normalized", "Normalizer", "UnknownSourceError", "normalize"]


class Normalizer(Protocol):
    """The entry point every source module exposes as `normalize`."""

    def __call__(
        self, payload: Any, *, received_at: datetime, headers: Mapping[str, str] | None = None
    ) -> Normalized: ...


SOURCES: dict[str, Normalizer] = {
    "prometheus": prometheus.normalize,
    "alertmanager": prometheus.normalize,
    "grafana": grafana.normalize,
    "datadog": datadog.normalize,
    "newrelic": newrelic.normalize,
    "cloudwatch": cloudwatch.normalize,
    "pagerduty": pagerduty.normalize,
    "opsgenie": opsgenie.normalize,
    "webhook": webhook.normalize,
}


class UnknownSourceError(EngineError):
    """A source name no normalizer is registered under; the message lists the known ones."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.known = sorted(SOURCES)
        super().__init__(f"unknown source {source!r:.60}; known sources: {', '.join(self.known)}")


def normalize(
    source: str,
    body: bytes | str | Any,
    *,
    received_at: datetime,
    headers: Mapping[str, str] | None = None,
) -> Normalized:
    """Normalize one request body from `source`.

    `bytes` and `str` bodies are parsed as JSON whatever the Content-Type (SNS posts
    text/plain); anything else is taken as already decoded. Raises UnknownSourceError for
    an unknown source and EventValidationError, whose `field` is a path into the payload
    (`alerts[1].labels`; `$` for the body as a whole), for anything invalid.
    """
    normalizer = SOURCES.get(source.strip().lower()) if isinstance(source, str) else None
    if normalizer is None:
        raise UnknownSourceError(str(source))
    if isinstance(body, bytes | bytearray | memoryview):
        payload = parse_json(bytes(body), ROOT)
    elif isinstance(body, str):
        payload = parse_json(body, ROOT)
    else:
        payload = body
    return normalizer(payload, received_at=received_at, headers=headers)
