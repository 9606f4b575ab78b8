"""The severity words sources use, mapped onto info, low, medium, high and critical."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_SEVERITY = "medium"

# A `severity` label (Alertmanager, Grafana) or a generic webhook's severity, case-insensitive.
LABEL_SEVERITY: dict[str, str] = {
    **dict.fromkeys(("critical", "crit", "fatal", "emergency", "page", "p1"), "critical"),
    **dict.fromkeys(("high", "error", "major", "p2"), "high"),
    **dict.fromkeys(("medium", "warning", "warn", "p3"), "medium"),
    **dict.fromkeys(("low", "minor", "p4"), "low"),
    **dict.fromkeys(("info", "informational", "none", "p5"), "info"),
}

# P1..P5 (Datadog $ALERT_PRIORITY, PagerDuty priority, Opsgenie priority).
PRIORITY_SEVERITY: dict[str, str] = {
    "p1": "critical",
    "p2": "high",
    "p3": "medium",
    "p4": "low",
    "p5": "info",
}


def map_severity(word: str | None, table: Mapping[str, str], default: str) -> str:
    """Look a source's word up case-insensitively; absent or unknown words give `default`."""
    if not word:
        return default
    return table.get(word.strip().lower(), default)
