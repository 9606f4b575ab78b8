"""Analytics results as JSON-able rows: times in RFC 3339 (UTC, Z), durations in seconds."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import polars as pl


def value(v: Any) -> Any:
    if isinstance(v, datetime):
        aware = v if v.tzinfo else v.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 3)
    return v


def records(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: value(v) for k, v in row.items()} for row in df.iter_rows(named=True)]


def record(df: pl.DataFrame) -> dict[str, Any]:
    rows = records(df)
    return rows[0] if rows else {}


def share(part: int | float | None, whole: int | float | None) -> float | None:
    """part / whole rounded to 4 places; None when there is nothing to divide."""
    if not whole:
        return None
    return round(float(part or 0) / float(whole), 4)
