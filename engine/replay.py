"""`klaxon replay` (DSL.md §7): rules over a JSONL file of events, transitions as JSONL.

The input is read a batch at a time (the next one parsed while the engine works), so memory
follows the batch size, not the file size. Output goes to a spool file first and reaches
stdout only when the whole input was good: a bad line stops the run with its line number and
nothing half-printed.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from dsl.errors import DslErrors
from dsl.fields import EVENT_KINDS, SEVERITIES, STATUSES
from engine.errors import EngineError
from engine.pipeline.engine import Engine, compile_for_engine
from engine.schema import (
    EVENT_SCHEMA,
    EventValidationError,
    events_frame,
    fill_fingerprints,
    format_time,
    normalize_record,
    parse_time,
)

RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%#z"

# How an event line reads: strings stay strings; `ts` is parsed below.
_LINE_SCHEMA = pl.Schema(
    {
        "ts": pl.String(),
        "kind": pl.String(),
        "source": pl.String(),
        "source_id": pl.String(),
        "fingerprint": pl.String(),
        "title": pl.String(),
        "description": pl.String(),
        "severity": pl.String(),
        "status": pl.String(),
        "service": pl.String(),
        "environment": pl.String(),
        "host": pl.String(),
        "value": pl.Float64(),
        "labels": pl.Map(pl.String, pl.String),
        "event_id": pl.String(),
    }
)


class ReplayInputError(EngineError):
    """A line of the events file that is not a canonical event."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def read_batches(stream: IO[bytes], batch_size: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """Non-blank lines in groups of `batch_size`, with their 1-based line numbers."""
    numbers: list[int] = []
    lines: list[bytes] = []
    for number, raw in enumerate(stream, 1):
        line = raw.strip()
        if not line:
            continue
        numbers.append(number)
        lines.append(line)
        if len(lines) >= batch_size:
            yield numbers, lines
            numbers, lines = [], []
    if lines:
        yield numbers, lines


def parse_lines(numbers: list[int], lines: list[bytes], received_at: datetime) -> pl.DataFrame:
    """JSON lines → EVENT_SCHEMA, each read as ingest reads the same event; the first bad line
    raises with its number and ingest's reason.

    Most lines give each field the JSON type it is due (text a string, `value` a number,
    `labels` an object of strings), and those Polars reads in one pass: the same reading.
    The other lines, and those that pass cannot vouch for, go one by one through ingest's own
    `normalize_record`: an epoch number as `ts`, `"value": "1.5"`, `"host": 12`, a label
    value that is not a string, and every line that is wrong.
    """
    text = pl.Series(lines, dtype=pl.Binary).cast(pl.String, strict=False)
    keys = text.str.count_matches(_LABELS_KEY)
    escaped = text.str.contains("\\", literal=True).fill_null(False)
    typed = (
        ~text.str.contains(_RETYPED)
        & ~text.str.contains("\\u0000", literal=True)
        & ((keys == 0) | ((keys == 1) & text.str.contains(_PLAIN_LABELS)))
    ).fill_null(False)  # a line that is not UTF-8 is read one by one
    if escaped.any():  # the regular expression is slow: only where a backslash is
        odd_key = text.filter(escaped).str.contains(_ESCAPED_KEY)
        typed &= ~pl.Series([False] * len(lines)).scatter(escaped.arg_true(), odd_key)
    at = typed.arg_true()
    read = _read_typed([lines[i] for i in at], received_at)
    if read is None:  # Polars cannot read one of them: ingest's reading names it
        return _read_each(numbers, lines, received_at)
    frame, vouched = read
    fast = typed.clone().scatter(at, vouched)  # the lines the typed pass vouches for
    if fast.all():
        return frame
    rest = (~fast).arg_true()
    others = _read_each([numbers[i] for i in rest], [lines[i] for i in rest], received_at)
    return (
        pl.concat(
            [
                frame.filter(vouched).with_columns(__at=fast.arg_true()),
                others.with_columns(__at=rest),
            ]
        )
        .sort("__at")
        .drop("__at")
    )


def _read_each(numbers: list[int], lines: list[bytes], received_at: datetime) -> pl.DataFrame:
    """Lines read one by one as ingest reads a posted event; the first bad one raises."""
    records = []
    for number, line in zip(numbers, lines, strict=True):
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise ReplayInputError(number, f"not JSON: {err}") from None
        try:
            records.append(normalize_record(item, received_at=received_at))
        except EventValidationError as err:
            raise ReplayInputError(number, err.reason) from None
    return events_frame(records).with_columns(raw=pl.lit(None, dtype=pl.String))


# A line Polars reads exactly as ingest does has no text field given a number, a boolean, an
# object or an array (Polars would print them), no `value` given anything but a number, no
# NUL (ingest refuses it), no key written with an escape (the other checks would not see
# it), and `labels` absent, null, or an object of strings. `"labels":` can only be a key (in
# valid JSON a quote inside a string is escaped), and a second one means nesting or a
# repeated key. `ts`, `kind`, `status` and `severity` are checked on what Polars reads (a
# number or boolean there is never a valid value), and a control character is not JSON to
# either reader. A line these flag that is plain after all is only read more slowly.
_TEXT = "|".join(
    c for c in _LINE_SCHEMA if c not in ("ts", "kind", "status", "severity", "value", "labels")
)
_RETYPED = rf'"(?:{_TEXT})"\s*:\s*[^"n\s]|"value"\s*:\s*[^-0-9n\s]'
_ESCAPED_KEY = r'"(?:[^"\\]|\\.)*\\(?:[^"\\]|\\.)*"\s*:'
_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = _STRING + r"\s*:\s*" + _STRING
_LABELS_KEY = r'"labels"\s*:'
_PLAIN_LABELS = _LABELS_KEY + rf"\s*(?:null|\{{\s*(?:{_PAIR}(?:\s*,\s*{_PAIR})*)?\s*\}})"
# RFC 3339 as Polars reads it the same as `parse_time` (other forms are read one by one).
_PLAIN_TS = r"^(?:19|20)\d\d-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"


def _read_typed(lines: list[bytes], received_at: datetime) -> tuple[pl.DataFrame, pl.Series] | None:
    """Lines whose fields have their due JSON types → EVENT_SCHEMA, and which rows it vouches
    for: a `ts` in the plain RFC 3339 form and a valid date, a known kind, status and severity.
    None when Polars cannot read them (a line is not JSON, or not an object)."""
    try:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=_LINE_SCHEMA)
    except pl.exceptions.PolarsError:
        return None
    if df.height != len(lines):
        return None
    ts = pl.col("ts")
    df = df.with_columns(
        ts=pl.when(ts.str.contains(_PLAIN_TS)).then(
            ts.str.to_datetime(RFC3339, time_unit="us", time_zone="UTC", strict=False)
        ),
        **{
            name: pl.col(name).replace("", None).fill_null(default).str.to_lowercase()
            for name, default in (("kind", "event"), ("status", "firing"), ("severity", "medium"))
        },
    )
    vouched = df.select(
        ts.is_not_null()
        & pl.col("kind").is_in(list(EVENT_KINDS))
        & pl.col("status").is_in(list(STATUSES))
        & pl.col("severity").is_in(list(SEVERITIES))
    ).to_series()
    strings = [c for c, t in _LINE_SCHEMA.items() if t == pl.String and c != "ts"]
    df = df.with_columns(
        [pl.col(c).fill_null("") for c in strings],
        labels=pl.col("labels").fill_null(pl.lit({}, dtype=_LINE_SCHEMA["labels"])),
        received_at=pl.lit(received_at).dt.cast_time_unit("us"),
        raw=pl.lit(None, dtype=pl.String),
    )
    df = df.select([pl.col(c).cast(t, strict=False) for c, t in EVENT_SCHEMA.items()])
    return fill_fingerprints(df), vouched


def transition_lines(transitions: pl.DataFrame) -> Iterator[bytes]:
    """Transitions (TRANSITION_SCHEMA) → the JSON lines DSL.md §7 shows."""
    for row in transitions.filter(pl.col("transition") != "repeated").iter_rows(named=True):
        value = row["value"]
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        out: dict[str, Any] = {
            "at": format_time(row["at"]),
            "rule": row["rule"],
            "transition": row["transition"],
            "key": orjson.loads(row["key"]),
            "severity": row["severity"],
            "value": value,
            "muted_by": row["muted_by"],
            "team": row["team"],
            "notify": row["notify"],
            "title": row["title"],
        }
        if row["incident_by"] is not None:
            out["incident"] = {
                "by": row["incident_by"],
                "key": orjson.loads(row["incident_key"]),
                "opened": format_time(row["incident_opened"]),
            }
        yield orjson.dumps(out) + b"\n"


def _parsed_ahead(events: IO[bytes], batch_size: int, received: datetime) -> Iterator[pl.DataFrame]:
    """The parsed batches in order, each read and parsed in a thread while the engine works
    on the one before: Polars parses without the GIL, beside the engine's own work. At most
    two batches are held, and a bad line raises where its batch would have been fed.
    """

    def parse_next(batches: Iterator[tuple[list[int], list[bytes]]]) -> pl.DataFrame | None:
        got = next(batches, None)
        return None if got is None else parse_lines(*got, received)

    batches = read_batches(events, batch_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-parse") as pool:
        ahead = pool.submit(parse_next, batches)
        while (batch := ahead.result()) is not None:
            ahead = pool.submit(parse_next, batches)
            yield batch


def replay(
    rules_text: str,
    rules_path: str,
    events: IO[bytes],
    out: IO[bytes],
    *,
    batch_size: int,
    until: datetime | None = None,
    progress: IO[str] | None = None,
) -> int:
    """Run the engine over the events; write transition lines; return how many were written."""
    engine = Engine(compile_for_engine(rules_text, rules_path))
    written = 0
    seen = 0
    for batch in _parsed_ahead(events, batch_size, datetime.now(UTC)):
        for line in transition_lines(engine.feed(batch)):
            out.write(line)
            written += 1
        seen += batch.height
        if progress is not None:
            progress.write(f"\r{seen:,} events, {written:,} transitions")
            progress.flush()
    final = until
    if final is None and engine.state.watermark is not None:
        final = datetime.fromtimestamp(engine.state.watermark / 1_000_000, UTC)
    if final is not None:
        for line in transition_lines(engine.advance(final)):
            out.write(line)
            written += 1
    if progress is not None:
        progress.write(f"\r{seen:,} events, {written:,} transitions\n")
    return written


def run_replay(args: argparse.Namespace) -> int:
    """The CLI entry point; errors go to stderr with a non-zero exit status."""
    rules_path = Path(args.rules)
    try:
        rules_text = rules_path.read_text(encoding="utf-8")
    except OSError as err:
        print(f"klaxon: error: cannot read {args.rules}: {err.strerror}", file=sys.stderr)
        return 2
    until = None
    if args.until:
        try:
            until = parse_time(args.until, "--until")
        except EventValidationError:
            print(
                f"klaxon: error: --until {args.until!r} is not an RFC 3339 timestamp",
                file=sys.stderr,
            )
            return 2
    try:
        events: IO[bytes] = sys.stdin.buffer if args.events == "-" else open(args.events, "rb")  # noqa: SIM115
    except OSError as err:
        print(f"klaxon: error: cannot read {args.events}: {err.strerror}", file=sys.stderr)
        return 2
    progress = sys.stderr if args.progress else None
    with events, tempfile.TemporaryFile() as spool:
        try:
            replay(
                rules_text,
                str(rules_path),
                events,
                spool,
                batch_size=args.batch_size,
                until=until,
                progress=progress,
            )
        except DslErrors as err:
            print(err, file=sys.stderr)
            return 1
        except ReplayInputError as err:
            print(f"klaxon: error: {args.events}:{err}", file=sys.stderr)
            return 1
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer)
        sys.stdout.flush()
    return 0
