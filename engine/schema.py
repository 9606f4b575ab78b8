"""The canonical event and the other frames the pipeline hands around (DESIGN.md §3)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from dsl.fields import EVENT_KINDS, SEVERITIES, SEVERITY_RANK, STATUSES
from engine.errors import EngineError

UTC_US = pl.Datetime("us", "UTC")
SEVERITY = pl.Enum(list(SEVERITIES))  # ordered by rank: the physical value is the rank
STATUS = pl.Enum(list(STATUSES))
EVENT_KIND = pl.Enum(list(EVENT_KINDS))
TRANSITION = pl.Enum(["fired", "repeated", "resolved"])
LABELS = pl.Map(pl.String, pl.String)

EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "ts": UTC_US,
        "received_at": UTC_US,
        "kind": EVENT_KIND,
        "source": pl.String(),
        "source_id": pl.String(),
        "fingerprint": pl.String(),
        "title": pl.String(),
        "description": pl.String(),
        "severity": SEVERITY,
        "status": STATUS,
        "service": pl.String(),
        "environment": pl.String(),
        "host": pl.String(),
        "value": pl.Float64(),
        "labels": LABELS,
        "raw": pl.String(),
    }
)

# What the engine reads of an event: every column but the raw payload, which stays in the store
# (a tool's payload can be kilobytes an event, and nothing downstream of ingest reads it).
FED_SCHEMA = pl.Schema({k: v for k, v in EVENT_SCHEMA.items() if k != "raw"})

# What the engine emits: one row per alert transition (DSL.md §7), plus repeats for the store.
TRANSITION_SCHEMA = pl.Schema(
    {
        "at": UTC_US,
        "rule": pl.String(),
        "key": pl.String(),  # canonical JSON: sorted field names, no spaces
        "transition": TRANSITION,
        "severity": SEVERITY,
        "value": pl.Float64(),
        "title": pl.String(),
        "labels": LABELS,  # the rule's and routes' labels, rendered
        "team": pl.String(),
        "notify": pl.List(pl.String),
        "escalate": pl.List(pl.Struct({"after_ms": pl.Int64, "target": pl.String})),
        "muted_by": pl.List(pl.String),
        "incident_by": pl.String(),
        "incident_key": pl.String(),
        "incident_opened": UTC_US,
        "occurrences": pl.Int64(),  # events the transition stands for (repeats fold into one row)
        "first_seen": UTC_US,
        "last_seen": UTC_US,
        # the latest event that fed the alert, for the alert's detail and for routing
        "event_id": pl.String(),
        "event_ts": UTC_US,  # that event's own time: for a tool's alert, when it started
        "fingerprint": pl.String(),
        "source": pl.String(),
        "service": pl.String(),
        "environment": pl.String(),
        "host": pl.String(),
        "description": pl.String(),
        "event_labels": LABELS,
    }
)

_BUILD_SCHEMA = pl.Schema(
    {
        name: pl.String
        if isinstance(dtype, pl.Enum)
        else pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
        if name == "labels"
        else dtype
        for name, dtype in EVENT_SCHEMA.items()
    }
)
_CASTS = {"kind": EVENT_KIND, "severity": SEVERITY, "status": STATUS, "labels": LABELS}

_STRING_FIELDS = (
    "event_id",
    "source",
    "source_id",
    "fingerprint",
    "title",
    "description",
    "service",
    "environment",
    "host",
    "raw",
)


class SchemaMismatchError(EngineError):
    """A frame that does not have the columns and types a layer expects."""


class EventValidationError(EngineError):
    """One event that cannot be accepted; names the field and, in a batch, the item."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        where = f"item {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")
        self.field = field
        self.index = index
        self.reason = message


def validate(df: pl.DataFrame, schema: pl.Schema, what: str = "frame") -> pl.DataFrame:
    """Raise SchemaMismatchError naming missing, extra and mistyped columns, all at once."""
    got = df.schema
    missing = [c for c in schema if c not in got]
    extra = [c for c in got if c not in schema]
    mistyped = [
        f"{c} is {got[c]}, expected {schema[c]}" for c in schema if c in got and got[c] != schema[c]
    ]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if extra:
        problems.append("unexpected " + ", ".join(extra))
    if mistyped:
        problems.append("; ".join(mistyped))
    if problems:
        raise SchemaMismatchError(f"{what}: " + "; ".join(problems))
    if list(got) != list(schema):
        df = df.select(list(schema))
    return df


def empty(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


# ---------------------------------------------------------------- times


def parse_time(value: Any, field: str = "ts") -> datetime:
    """RFC 3339 text (Z or offset, any fraction) or an epoch number → aware UTC.

    An epoch number's unit is read from its magnitude (`epoch_unit`). A time Python cannot
    hold (before year 1 or after 9999 in UTC) or a NaN/infinite number raises
    EventValidationError naming `field`, never OverflowError.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _to_utc(aware, value, field)
    if isinstance(value, bool) or value is None:
        raise EventValidationError(f"'{field}' must be an RFC 3339 timestamp", field=field)
    if isinstance(value, int | float):
        return _from_epoch(value, field)
    if not isinstance(value, str):
        raise EventValidationError(f"'{field}' must be an RFC 3339 timestamp", field=field)
    text = value.strip()
    try:
        parsed = _parse_rfc3339(text)
    except ValueError:
        raise EventValidationError(
            f"'{field}' is not an RFC 3339 timestamp: {value!r}", field=field
        ) from None
    return _to_utc(parsed, value, field)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (unit, name, |value| below which a number is in that unit, nanoseconds per unit). A bound
# of 1e11 in one unit is 1973-03-03 in the next coarser one, so each unit covers about
# 1973–5138 (seconds also 1970–1973) and a value is read in the unit that lands it there.
_EPOCH_UNITS: tuple[tuple[str, str, float, int], ...] = (
    ("s", "seconds", 1e11, 1_000_000_000),
    ("ms", "milliseconds", 1e14, 1_000_000),
    ("us", "microseconds", 1e17, 1000),
    ("ns", "nanoseconds", math.inf, 1),
)


def epoch_unit(value: float) -> str:
    """The unit an epoch number is in, read from its magnitude: "s", "ms", "us" or "ns".

    >>> [epoch_unit(v) for v in (1.7e9, 1.7e12, 1.7e15, 1.7e18)]
    ['s', 'ms', 'us', 'ns']
    """
    return next(unit for unit, _, bound, _ in _EPOCH_UNITS if abs(value) < bound)


def _from_epoch(value: float, field: str) -> datetime:
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(
            f"'{field}' must be a finite epoch number, got {value}", field=field
        )
    _, name, _, nanos = next(u for u in _EPOCH_UNITS if abs(value) < u[2])
    try:
        if isinstance(value, int):
            # Integer arithmetic: a nanosecond epoch has more digits than a float holds exactly.
            # Finer than a microsecond is rounded down, the precision of an event's `ts`.
            return _EPOCH + timedelta(microseconds=value * nanos // 1000)
        return _EPOCH + timedelta(seconds=value / (1_000_000_000 / nanos))
    except OverflowError:
        raise EventValidationError(
            f"'{field}' is out of range: {_number(value)} read as epoch {name} is not between "
            "years 1 and 9999",
            field=field,
        ) from None


def _number(value: float) -> str:
    # str() of an int past 4300 digits raises ValueError, and nobody reads such a number.
    if isinstance(value, float) or abs(value) < 10**100:
        return str(value)
    return "an integer of more than 100 digits"


def _to_utc(value: datetime, shown: Any, field: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise EventValidationError(
            f"'{field}' is out of range: {shown!r} is not between years 1 and 9999 in UTC",
            field=field,
        ) from None


def _parse_rfc3339(text: str) -> datetime:
    text = text.replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python takes at most 6 fractional digits; Grafana sends 9.
    if "." in text:
        head, _, rest = text.partition(".")
        n = next((i for i, c in enumerate(rest) if not c.isdigit()), len(rest))
        digits, tail = rest[:n], rest[n:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    # +0000 (CloudWatch) → +00:00
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("no zone")
    return value


def format_time(value: datetime) -> str:
    """UTC, `Z`, to the second or finer: `2026-01-01T00:01:30Z`."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


# ---------------------------------------------------------------- fingerprints


def identity_hash(*parts: str) -> str:
    """A stable 16-hex-digit hash of identity fields (the same in every Klaxon version)."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def fill_fingerprints(df: pl.DataFrame) -> pl.DataFrame:
    """Give events without a fingerprint one: hash of source, title, service, environment, host.

    Hashes each distinct identity once, so a batch of a million events from a few hundred
    services costs a few hundred hashes.
    """
    missing = pl.col("fingerprint").is_null() | (pl.col("fingerprint") == "")
    if not df.select(missing.any()).item():
        return df
    fields = ["source", "title", "service", "environment", "host"]
    ident = pl.concat_str([pl.col(f).fill_null("") for f in fields], separator="\x1f")
    uniques = df.filter(missing).select(ident.alias("ident")).unique()["ident"].to_list()
    table = {u: hashlib.blake2b(u.encode(), digest_size=8).hexdigest() for u in uniques}
    return df.with_columns(
        pl.when(missing)
        .then(ident.replace_strict(table, default=None, return_dtype=pl.String))
        .otherwise(pl.col("fingerprint"))
        .alias("fingerprint")
    )


# ---------------------------------------------------------------- records → frames


def label_text(value: Any) -> str:
    """A label's value as the text events keep: JSON numbers as Python prints them, true and
    false as such, null as "", objects and arrays as compact JSON. Ingest and `klaxon replay`
    both read labels this way."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def normalize_record(
    item: Mapping[str, Any],
    *,
    received_at: datetime,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One canonical event as a dict of column values, with DSL.md §7's defaults.

    Raises EventValidationError naming the field for anything that cannot be an event.
    """
    if not isinstance(item, Mapping):
        raise EventValidationError("an event must be a JSON object", field=None)
    rec: dict[str, Any] = dict(defaults or {})
    rec.update(item)
    if "ts" not in rec or rec["ts"] in (None, ""):
        raise EventValidationError("'ts' is required", field="ts")
    out: dict[str, Any] = {"ts": parse_time(rec["ts"], "ts"), "received_at": received_at}
    for name, allowed, default in (
        ("kind", EVENT_KINDS, "event"),
        ("status", STATUSES, "firing"),
        ("severity", SEVERITIES, "medium"),
    ):
        value = rec.get(name) or default
        if not isinstance(value, str) or value.lower() not in allowed:
            raise EventValidationError(
                f"'{name}' must be one of {', '.join(allowed)}, got {value!r}", field=name
            )
        out[name] = value.lower()
    for name in _STRING_FIELDS:
        value = rec.get(name)
        if value is None:
            out[name] = None if name == "raw" else ""
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = str(value)
        elif name == "raw":
            out[name] = orjson.dumps(value).decode()
        else:
            raise EventValidationError(f"'{name}' must be a string", field=name)
    value = rec.get("value")
    if value is None or value == "":
        out["value"] = None
    elif isinstance(value, bool):
        raise EventValidationError("'value' must be a number", field="value")
    elif isinstance(value, int | float):
        out["value"] = float(value)
    elif isinstance(value, str):
        try:
            out["value"] = float(value)
        except ValueError:
            raise EventValidationError(
                f"'value' must be a number, got {value!r}", field="value"
            ) from None
    else:
        raise EventValidationError("'value' must be a number", field="value")
    labels = rec.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise EventValidationError("'labels' must be an object of names to strings", field="labels")
    out["labels"] = {str(k): label_text(v) for k, v in labels.items()}
    _refuse_nul(out)
    return out


def _refuse_nul(rec: dict[str, Any]) -> None:
    """A NUL character is refused in every text an event is stored and found by (PostgreSQL
    text and jsonb cannot hold one, and both stores must accept the same events); in `raw`,
    kept only for reading, it is escaped as JSON writes it."""
    if rec["raw"] is not None and "\x00" in rec["raw"]:
        rec["raw"] = rec["raw"].replace("\x00", "\\u0000")
    for name in _STRING_FIELDS:
        if name != "raw" and "\x00" in rec[name]:
            raise EventValidationError(f"'{name}' contains a NUL character (\\u0000)", field=name)
    for key, value in rec["labels"].items():
        if "\x00" in key or "\x00" in value:
            raise EventValidationError(
                f"label {key!r} contains a NUL character (\\u0000)", field=f"labels.{key}"
            )


def events_frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Normalized records (from `normalize_record`) → a frame of EVENT_SCHEMA, fingerprints filled."""
    if not records:
        return empty(EVENT_SCHEMA)
    # Building Enum and Map columns from Python objects is slow; build strings and key/value
    # lists, then cast the whole columns (30x cheaper for a 100-event request).
    rows = [
        {**r, "labels": [{"key": k, "value": v} for k, v in (r.get("labels") or {}).items()]}
        for r in records
    ]
    df = pl.from_dicts(rows, schema=_BUILD_SCHEMA).cast(_CASTS)  # type: ignore[arg-type]
    return fill_fingerprints(df)


def with_fingerprint(rec: dict[str, Any]) -> dict[str, Any]:
    """A normalized record without a fingerprint gets the one `fill_fingerprints` would give."""
    if not rec.get("fingerprint"):
        rec["fingerprint"] = identity_hash(
            *(rec.get(f) or "" for f in ("source", "title", "service", "environment", "host"))
        )
    return rec


def records_from_dicts(
    items: Iterable[Mapping[str, Any]], *, received_at: datetime | None = None
) -> list[dict[str, Any]]:
    """Validate canonical event dicts into store-ready records; the first bad one raises."""
    now = received_at or datetime.now(UTC)
    records = []
    for i, item in enumerate(items):
        try:
            records.append(with_fingerprint(normalize_record(item, received_at=now)))
        except EventValidationError as err:
            raise EventValidationError(err.reason, field=err.field, index=i) from None
    return records


def events_from_dicts(
    items: Iterable[Mapping[str, Any]], *, received_at: datetime | None = None
) -> pl.DataFrame:
    """Validate and convert canonical event dicts; the first bad one raises with its index."""
    now = received_at or datetime.now(UTC)
    records = []
    for i, item in enumerate(items):
        try:
            records.append(normalize_record(item, received_at=now))
        except EventValidationError as err:
            raise EventValidationError(err.reason, field=err.field, index=i) from None
    return events_frame(records)


def severity_rank(name: str) -> int:
    return SEVERITY_RANK[name]
