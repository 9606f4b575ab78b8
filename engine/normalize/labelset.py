"""Alertmanager-style alerts (Prometheus, Grafana): label-set fingerprint, status, times, naming."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.normalize.reading import (
    as_object,
    compact_json,
    fail,
    is_zero_time,
    join,
    opt_text,
    opt_text_map,
    opt_time,
    req_text,
    text_map,
)
from engine.normalize.severity import DEFAULT_SEVERITY, LABEL_SEVERITY, map_severity

ANNOTATION_PREFIX = "annotation_"
STATUSES = ("firing", "resolved")
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = b"\xff"


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's own fingerprint of a label set (FNV-1a 64 over sorted name/value pairs).

    Gives the value Alertmanager puts in `alerts[].fingerprint`, so an alert reads the same
    whether or not the sender included it.
    """
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), _SEPARATOR, labels[name].encode(), _SEPARATOR):
            for byte in part:
                value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


@dataclass(frozen=True)
class LabelledAlert:
    """The parts of one `alerts[]` item every Alertmanager-style source shares."""

    path: str
    status: str
    ts: datetime
    given_fingerprint: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    times: str  # startsAt and endsAt as sent, for event ids that never depend on receive time
    raw: str

    @property
    def title(self) -> str:
        return self.labels.get("alertname") or self.annotations.get("summary") or ""

    @property
    def description(self) -> str:
        return self.annotations.get("description") or self.annotations.get("summary") or ""

    @property
    def severity(self) -> str:
        return map_severity(self.labels.get("severity"), LABEL_SEVERITY, DEFAULT_SEVERITY)

    @property
    def service(self) -> str:
        return self.labels.get("service") or self.labels.get("job") or ""

    @property
    def environment(self) -> str:
        return (
            self.labels.get("env")
            or self.labels.get("environment")
            or self.labels.get("deploy")
            or ""
        )

    @property
    def host(self) -> str:
        return self.labels.get("host") or self.labels.get("instance") or ""

    def event_labels(self, extra: Mapping[str, str]) -> dict[str, str]:
        """Labels as sent, then `annotation_<name>`, then `extra`; an earlier key wins."""
        out = dict(extra)
        out.update({ANNOTATION_PREFIX + k: v for k, v in self.annotations.items()})
        out.update(self.labels)
        return out


def read_alert(item: Any, path: str, *, received_at: datetime) -> LabelledAlert:
    """Validate one `alerts[]` item: its own status, and ts = startsAt (firing) or endsAt."""
    alert = as_object(item, path)
    status = req_text(alert, "status", path)
    if status not in STATUSES:
        where = join(path, "status")
        raise fail(f"'{where}' must be firing or resolved, got {status!r:.40}", where)
    labels_value = alert.get("labels")
    labels = {} if labels_value is None else text_map(labels_value, join(path, "labels"))
    annotations = opt_text_map(alert, "annotations", path)
    starts = opt_time(alert, "startsAt", path)
    ends = opt_time(alert, "endsAt", path)
    if status == "firing":
        if starts is None or is_zero_time(starts):
            where = join(path, "startsAt")
            raise fail(f"'{where}' is required for a firing alert", where)
        ts = starts
    else:
        # A resolved alert without an end time ended when we heard of it.
        ts = received_at if ends is None or is_zero_time(ends) else ends
    fingerprint = opt_text(alert, "fingerprint", path)
    return LabelledAlert(
        path=path,
        status=status,
        ts=ts,
        given_fingerprint=fingerprint,
        labels=labels,
        annotations=annotations,
        times=f"{alert.get('startsAt')}|{alert.get('endsAt')}",
        raw=compact_json(alert, path),
    )


def url_labels(alert: Mapping[str, Any], path: str, names: tuple[str, ...]) -> dict[str, str]:
    """The link fields an alert carries (generatorURL, silenceURL, ...), empty ones left out."""
    out = {}
    for name in names:
        value = opt_text(alert, name, path)
        if value:
            out[name] = value
    return out
