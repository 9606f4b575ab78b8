"""The filters every analytics question takes: period, team, service, severity, source, rule.

    f = Filters.of(start=..., end=..., team=["platform"])
    where, params = f.where("a")      # SQL for DuckDB, with $named parameters

The period is half-open, [start, end), over the alert's `created_at` (a notification's or an
event's own time where the question is about those). Lists mean "any of". Times in the
snapshot are naive UTC, so parameters are too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.analytics.errors import AnalyticsQueryError

SEVERITIES = ("info", "low", "medium", "high", "critical")
DIMENSIONS = ("team", "service", "severity", "source", "rule")
BUCKETS = ("day", "week")
DEFAULT_DAYS = 30
MAX_LIST = 200


def _split(values: Iterable[str] | str | None, name: str = "filter") -> tuple[str, ...]:
    """`["a,b", "c"]` and `"a,b,c"` both mean a, b and c."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise AnalyticsQueryError(name, f"{name}: give text values")
        out += [x.strip() for x in v.split(",") if x.strip()]
    return tuple(dict.fromkeys(out))


def _aware(value: datetime) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def naive(value: datetime) -> datetime:
    """Aware → naive UTC, as the snapshot stores times."""
    return _aware(value).replace(tzinfo=None)


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    team: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()
    bucket: str = "day"

    @classmethod
    def of(
        cls,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        team: Sequence[str] | str | None = None,
        service: Sequence[str] | str | None = None,
        severity: Sequence[str] | str | None = None,
        source: Sequence[str] | str | None = None,
        rule: Sequence[str] | str | None = None,
        bucket: str = "day",
        now: datetime | None = None,
    ) -> Filters:
        """Checked filters; the period defaults to the DEFAULT_DAYS days before `end` (or now)."""
        try:
            end = _aware(end) if end else _aware(now or datetime.now(UTC))
        except (OverflowError, ValueError):
            raise AnalyticsQueryError("to", "'to' is out of range") from None
        try:
            start = _aware(start) if start else end - timedelta(days=DEFAULT_DAYS)
        except (OverflowError, ValueError):
            raise AnalyticsQueryError("from", "'from' is out of range") from None
        if start >= end:
            raise AnalyticsQueryError(
                "from", f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})"
            )
        if bucket not in BUCKETS:
            raise AnalyticsQueryError(
                "bucket", f"unknown bucket {bucket!r}; choose one of {', '.join(BUCKETS)}"
            )
        values = {
            name: _split(v, name)
            for name, v in (
                ("team", team),
                ("service", service),
                ("severity", severity),
                ("source", source),
                ("rule", rule),
            )
        }
        for name, items in values.items():
            if len(items) > MAX_LIST:
                raise AnalyticsQueryError(name, f"at most {MAX_LIST} values of {name!r}")
            if any(len(x) > 256 for x in items):
                raise AnalyticsQueryError(name, f"a {name} value is longer than 256 characters")
        unknown = [s for s in values["severity"] if s not in SEVERITIES]
        if unknown:
            raise AnalyticsQueryError(
                "severity", f"unknown severity {unknown[0]!r}; choose from {', '.join(SEVERITIES)}"
            )
        return cls(start=start, end=end, bucket=bucket, **values)

    @property
    def is_narrowed(self) -> bool:
        """Filters beyond the period are set (a question about notifications must join alerts)."""
        return any(getattr(self, d) for d in DIMENSIONS)

    def where(
        self,
        alias: str = "",
        time_column: str = "created_at",
        *,
        dimensions: Sequence[str] = DIMENSIONS,
    ) -> tuple[str, dict[str, Any]]:
        """A WHERE condition (without the keyword) and its parameters."""
        prefix = f"{alias}." if alias else ""
        conds = [f"{prefix}{time_column} >= $start", f"{prefix}{time_column} < $end"]
        params: dict[str, Any] = {"start": naive(self.start), "end": naive(self.end)}
        dims, dim_params = self.dims(alias, dimensions)
        return " AND ".join([*conds, dims]), params | dim_params

    def dims(
        self, alias: str = "", dimensions: Sequence[str] = DIMENSIONS
    ) -> tuple[str, dict[str, Any]]:
        """The condition on team, service, severity, source and rule alone ("TRUE" if none)."""
        prefix = f"{alias}." if alias else ""
        conds = ["TRUE"]
        params: dict[str, Any] = {}
        for name in dimensions:
            values = getattr(self, name)
            if values:
                conds.append(f"list_contains(${name}, {prefix}{name})")
                params[name] = list(values)
        return " AND ".join(conds), params

    def bucket_sql(self, column: str) -> str:
        return f"date_trunc('{self.bucket}', {column})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat().replace("+00:00", "Z"),
            "to": self.end.isoformat().replace("+00:00", "Z"),
            "team": list(self.team),
            "service": list(self.service),
            "severity": list(self.severity),
            "source": list(self.source),
            "rule": list(self.rule),
            "bucket": self.bucket,
        }


def dimension(value: str | None, field: str = "by") -> str | None:
    """A group-by dimension, checked."""
    if value is None or value == "":
        return None
    if value not in DIMENSIONS:
        raise AnalyticsQueryError(
            field, f"cannot group by {value!r}; choose one of {', '.join(DIMENSIONS)}"
        )
    return value
