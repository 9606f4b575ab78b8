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
    LABELS,
    EventValidationError,
    fill_fingerprints,
    format_time,
    label_text,
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
    """JSON lines → EVENT_SCHEMA, with DSL.md §7's defaults; the first bad line raises."""
    try:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=_LINE_SCHEMA)
    except pl.exceptions.PolarsError:
        _find_bad_line(numbers, lines)
        raise  # _find_bad_line always raises; this keeps type checkers content
    if df.height != len(lines):
        _find_bad_line(numbers, lines)
    df = _labels_as_ingest_reads_them(df, numbers, lines)
    ts = df["ts"].str.to_datetime(RFC3339, time_unit="us", time_zone="UTC", strict=False)
    bad = ts.is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        value = df["ts"][i]
        try:
            ts[i] = parse_time(value, "ts") if value is not None else None
        except EventValidationError as err:
            raise ReplayInputError(numbers[i], err.reason) from None
        if value is None:
            raise ReplayInputError(numbers[i], "'ts' is required")
        # Unusual but valid formats: parse the rest one by one.
        texts = df["ts"].to_list()
        values = []
        for j, text in enumerate(texts):
            try:
                values.append(
                    ts[j] if ts[j] is not None else parse_time(text, "ts") if text else None
                )
            except EventValidationError as err:
                raise ReplayInputError(numbers[j], err.reason) from None
            if values[-1] is None:
                raise ReplayInputError(numbers[j], "'ts' is required")
        ts = pl.Series("ts", values, dtype=EVENT_SCHEMA["ts"])
    df = df.with_columns(ts=ts)
    for name, allowed, default in (
        ("kind", EVENT_KINDS, "event"),
        ("status", STATUSES, "firing"),
        ("severity", SEVERITIES, "medium"),
    ):
        col = df[name].fill_null(default).str.to_lowercase()
        wrong = ~col.is_in(list(allowed))
        if wrong.any():
            i = int(wrong.arg_true()[0])
            raise ReplayInputError(
                numbers[i], f"'{name}' must be one of {', '.join(allowed)}, got {df[name][i]!r}"
            )
        df = df.with_columns(col.alias(name))
    strings = [
        c
        for c, t in _LINE_SCHEMA.items()
        if t == pl.String and c not in ("ts", "kind", "status", "severity")
    ]
    df = df.with_columns(
        [pl.col(c).fill_null("") for c in strings],
        labels=pl.col("labels").fill_null(pl.lit({}, dtype=_LINE_SCHEMA["labels"])),
        received_at=pl.lit(received_at).dt.cast_time_unit("us"),
        raw=pl.lit(None, dtype=pl.String),
    )
    df = df.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()])
    return fill_fingerprints(df)


# A line whose `labels` are absent, null, or an object of string values only; read_ndjson
# reads those exactly. `"labels":` can only be a key (in valid JSON a quote inside a string is
# escaped), and a second one means nesting or a repeated key.
_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = _STRING + r"\s*:\s*" + _STRING
_LABELS_KEY = r'"labels"\s*:'
_PLAIN_LABELS = _LABELS_KEY + rf"\s*(?:null|\{{\s*(?:{_PAIR}(?:\s*,\s*{_PAIR})*)?\s*\}})"


def _labels_as_ingest_reads_them(
    df: pl.DataFrame, numbers: list[int], lines: list[bytes]
) -> pl.DataFrame:
    """A label value that is not a string gets the text ingest gives it (schema.label_text):
    read_ndjson prints `1.0` as "1" and keeps null as null, where the same event posted to the
    API has "1.0" and "". Those few lines are read again one by one."""
    text = pl.Series(lines, dtype=pl.Binary).cast(pl.String, strict=False)
    keys = text.str.count_matches(_LABELS_KEY)
    plain = (keys == 0) | ((keys == 1) & text.str.contains(_PLAIN_LABELS))
    odd = ~plain.fill_null(False)  # a line that is not UTF-8 is read again too
    if not odd.any():
        return df
    fixed: list[list[dict[str, str]] | None] = [None] * df.height
    for i in odd.arg_true().to_list():
        try:
            labels = orjson.loads(lines[i]).get("labels") or {}
        except orjson.JSONDecodeError as err:
            raise ReplayInputError(numbers[i], f"not JSON: {err}") from None
        fixed[i] = [{"key": str(k), "value": label_text(v)} for k, v in labels.items()]
    as_ingest = pl.Series(fixed, dtype=pl.List(pl.Struct({"key": pl.String, "value": pl.String})))
    return df.with_columns(
        labels=pl.when(pl.lit(odd)).then(pl.lit(as_ingest).cast(LABELS)).otherwise("labels")
    )


def _find_bad_line(numbers: list[int], lines: list[bytes]) -> None:
    for number, line in zip(numbers, lines, strict=True):
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise ReplayInputError(number, f"not JSON: {err}") from None
        if not isinstance(item, dict):
            raise ReplayInputError(number, "an event must be a JSON object")
        try:
            pl.read_ndjson(io.BytesIO(line), schema=_LINE_SCHEMA)
        except pl.exceptions.PolarsError:
            raise ReplayInputError(number, _explain(item)) from None
    raise ReplayInputError(numbers[0], "cannot read these lines as events")


def _explain(item: dict[str, Any]) -> str:
    value = item.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"'value' must be a number, got {value!r}"
    labels = item.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return "'labels' must be an object of names to strings"
    for name in _LINE_SCHEMA:
        if name not in ("value", "labels") and isinstance(item.get(name), dict | list):
            return f"'{name}' must be a string"
    return "cannot read this line as an event"


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
