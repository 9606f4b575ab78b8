"""What rules can name: the canonical columns, the severities and the kinds of values."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable


class Kind(enum.Enum):
    """The static type of an expression; decides how operators read their operands (DSL.md §2–3)."""

    TEXT = "text"  # a string column, a string literal, a string function
    LABEL = "label"  # a label: text, or a number when compared with one
    NUMBER = "number"
    BOOL = "condition"
    SEVERITY = "severity"
    TIME = "time"
    LIST = "list"
    MAP = "map"


SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
STATUSES: tuple[str, ...] = ("firing", "resolved")
EVENT_KINDS: tuple[str, ...] = ("alert", "event")

# The canonical event's columns as rules see them (DESIGN.md §3, DSL.md §2).
EVENT_COLUMNS: dict[str, Kind] = {
    "ts": Kind.TIME,
    "received_at": Kind.TIME,
    "kind": Kind.TEXT,
    "source": Kind.TEXT,
    "source_id": Kind.TEXT,
    "fingerprint": Kind.TEXT,
    "title": Kind.TEXT,
    "description": Kind.TEXT,
    "severity": Kind.SEVERITY,
    "status": Kind.TEXT,
    "service": Kind.TEXT,
    "environment": Kind.TEXT,
    "host": Kind.TEXT,
    "value": Kind.NUMBER,
    "labels": Kind.MAP,
}

# Over alerts (route, silence, inhibit, correlate) these names join the event's columns.
ALERT_NAMES: dict[str, Kind] = {"rule": Kind.TEXT, "team": Kind.TEXT}

# Columns whose values are a closed set: a literal outside it is a mistake worth naming.
CLOSED_VALUES: dict[str, tuple[str, ...]] = {
    "severity": SEVERITIES,
    "status": STATUSES,
    "kind": EVENT_KINDS,
}

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The nearest known word to a misspelt one, quoted for a hint, or None."""
    found = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.5)
    return f"'{found[0]}'" if found else None
