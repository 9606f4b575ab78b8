"""Exports: alert lists, analytics tables, backtest results and the audit log as CSV, Parquet or
JSON, streamed a batch at a time (memory follows the batch, never the export).

    chunks = stream(alert_batches(wh, filters), "parquet")   # Iterator[bytes], for HTTP
    rows = write(alert_batches(wh, filters), "csv", path)     # to a file

CSV and JSON show times as RFC 3339 UTC (`2026-03-02T10:00:00Z`); Parquet keeps them as UTC
timestamps. JSON is one array, written element by element. CSV cells a spreadsheet would run
as a formula (starting with =, +, -, @, tab or CR) get a leading apostrophe, as the audit
export does. Alerts come from the analytics snapshot, refreshed first, so a large export never
holds a transaction open on the store.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq

from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import Filters
from engine.analytics.warehouse import Warehouse
from engine.auth.principal import Principal
from engine.store.db import Database

FORMATS = ("csv", "parquet", "json")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}
BATCH_ROWS = 50_000
ALERT_COLUMNS = (
    "id", "title", "severity", "status", "source", "service", "environment", "host", "team",
    "rule", "key", "fingerprint", "occurrences", "incident_id", "created_at", "acknowledged_at",
    "acknowledged_by", "resolved_at", "resolved_by", "resolution", "assignee",
)  # fmt: skip
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise AnalyticsQueryError(
            "format", f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
        )
    return fmt


# ---------------------------------------------------------------- sources


def alert_batches(
    wh: Warehouse, filters: Filters, batch_rows: int = BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """Alerts matching the filters, oldest first. The snapshot is refreshed and the query
    started here, so problems surface before the first byte is sent."""
    wh.ensure_fresh(0.0)
    where, params = filters.where()
    sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE {where} ORDER BY created_at, id"
    return _arrow_frames(wh.reader(sql, params, batch_rows=batch_rows))


def _arrow_frames(reader: Any) -> Iterator[pl.DataFrame]:
    yielded = False
    for batch in reader:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yielded = True
        yield _utc(frame)
    if not yielded:
        empty = pl.from_arrow(reader.schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        yield _utc(empty)


def audit_batches(
    db: Database,
    actor: Principal,
    start: datetime | None,
    end: datetime | None,
    batch_rows: int = 5000,
) -> Iterator[pl.DataFrame]:
    """The audit log in id order (engine.auth.audit_search reads it a chunk at a time)."""
    from engine.auth.audit_search import COLUMNS, AuditQuery, iter_audit

    rows = iter_audit(db, actor, AuditQuery(since=start, until=end))
    schema = dict.fromkeys(COLUMNS, pl.String) | {"id": pl.Int64}
    chunk: list[dict[str, Any]] = []
    yielded = False
    for row in rows:
        chunk.append(
            {c: _json_text(row[c]) if c in ("before", "after") else row[c] for c in COLUMNS}
        )
        if len(chunk) >= batch_rows:
            yield _audit_frame(chunk, schema)
            yielded = True
            chunk = []
    if chunk or not yielded:
        yield _audit_frame(chunk, schema)


def _audit_frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return frame.with_columns(pl.col("at").str.to_datetime(time_zone="UTC", time_unit="us"))


def analytics_rows(
    wh: Warehouse, db: Database, metric: str, filters: Filters, table: str | None = None
) -> list[dict[str, Any]]:
    """The main table of an analytics answer (or the named one: `noise` has `rules` and
    `fingerprints`, `teams` has `teams` and `people`)."""
    answer, tables = analytics_answer(wh, db, metric, filters)
    name = table or tables[0]
    if name not in tables:
        raise AnalyticsQueryError("table", f"{metric} has the tables {', '.join(tables)}")
    rows: list[dict[str, Any]] = answer[name]
    return rows


def analytics_answer(
    wh: Warehouse, db: Database, metric: str, filters: Filters, by: str | None = None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A whole analytics answer, as its API route gives it, and the names of its tables.

    `by` groups MTTA/MTTR/MTTD, SLA and volume by a dimension (volume: by source if None)."""
    from engine.analytics.dashboard import dashboard
    from engine.analytics.delivery import delivery
    from engine.analytics.metrics import response_times
    from engine.analytics.noise import flapping, noise
    from engine.analytics.sla import sla, targets
    from engine.analytics.teams import people, team_load
    from engine.analytics.volume import volume

    def goals() -> dict[str, dict[str, int | None]]:
        with db.read() as conn:
            return targets(conn)

    def load() -> dict[str, Any]:
        with db.read() as conn:
            team_frame, members = people(conn)
        return team_load(wh, filters, team_frame, members)

    answers: dict[str, tuple[Callable[[], dict[str, Any]], tuple[str, ...]]] = {
        "dashboard": (
            lambda: dashboard(wh, filters, goals()),
            ("series", "top_rules", "sla", "delivery"),
        ),
        "mtta": (lambda: response_times(wh, filters, "mtta", by), ("series",)),
        "mttr": (lambda: response_times(wh, filters, "mttr", by), ("series",)),
        "mttd": (lambda: response_times(wh, filters, "mttd", by), ("series",)),
        "volume": (
            lambda: volume(wh, filters, by or "source"),
            ("series", "totals", "events_series"),
        ),
        "noise": (lambda: noise(wh, filters, limit=1000), ("rules", "fingerprints")),
        "flapping": (lambda: flapping(wh, filters, limit=1000), ("series",)),
        "sla": (lambda: sla(wh, filters, goals(), by=by), ("severities",)),
        "teams": (load, ("teams", "people")),
        "delivery": (lambda: delivery(wh, filters), ("channels",)),
    }
    if metric not in answers:
        raise AnalyticsQueryError(
            "metric", f"unknown analytics table {metric!r}; choose one of {', '.join(answers)}"
        )
    run, tables = answers[metric]
    result = run()
    return result, (*tables, "groups") if "groups" in result else tables


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def table_of(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """JSON-able rows (an analytics or backtest table) → a frame, nested objects flattened."""
    flat = [_flatten(r) for r in rows]
    columns: dict[str, None] = {}
    for r in flat:
        columns.update(dict.fromkeys(r))
    return (
        pl.DataFrame([{c: r.get(c) for c in columns} for r in flat], infer_schema_length=None)
        if flat
        else pl.DataFrame()
    )


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flatten(v, f"{name}.")
        elif isinstance(v, list):
            out[name] = _json_text(v)
        else:
            out[name] = v
    return out


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """The snapshot's naive UTC times → aware UTC."""
    naive = [
        c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None
    ]
    return frame.with_columns(pl.col(naive).dt.replace_time_zone("UTC")) if naive else frame


# ---------------------------------------------------------------- writing


class _Spool(io.RawIOBase):
    """A write-only file whose bytes are taken as they come (for streaming Parquet)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.size

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _textual(frame: pl.DataFrame, *, escape: bool) -> pl.DataFrame:
    """Times as RFC 3339 text; for CSV, formula-looking text cells defused."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            exprs.append(col.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
        elif dtype == pl.String and escape:
            exprs.append(pl.when(_starts(col)).then(pl.lit("'") + col).otherwise(col).alias(name))
        else:
            exprs.append(col)
    return frame.select(exprs) if exprs else frame


def _starts(col: pl.Expr) -> pl.Expr:
    cond = pl.lit(False)
    for prefix in _FORMULA:
        cond = cond | col.str.starts_with(prefix)
    return cond


def stream(
    batches: Iterable[pl.DataFrame], fmt: str, on_rows: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The export as a stream of byte chunks, one or more per batch."""
    check_format(fmt)
    if fmt == "parquet":
        yield from _parquet(batches, on_rows)
        return
    first = True
    if fmt == "json":
        yield b"["
    for frame in batches:
        if on_rows:
            on_rows(frame.height)
        if fmt == "csv":
            text = _textual(frame, escape=True)
            yield text.write_csv(include_header=first).encode()
            first = False
            continue
        if frame.height == 0:
            continue
        lines = _textual(frame, escape=False).write_ndjson().rstrip("\n").replace("\n", ",\n")
        yield (b"" if first else b",\n") + lines.encode()
        first = False
    if fmt == "json":
        yield b"]\n"


def _parquet(
    batches: Iterable[pl.DataFrame], on_rows: Callable[[int], None] | None
) -> Iterator[bytes]:
    spool = _Spool()
    writer: pq.ParquetWriter | None = None
    for frame in batches:
        if on_rows:
            on_rows(frame.height)
        table = frame.to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(spool, table.schema, compression="zstd")
        if table.num_rows:
            writer.write_table(table.cast(writer.schema))
        yield spool.take()
    if writer is None:
        writer = pq.ParquetWriter(spool, pl.DataFrame().to_arrow().schema)
    writer.close()
    yield spool.take()


def write(batches: Iterable[pl.DataFrame], fmt: str, path: Path | str) -> int:
    """Write the export to `path` (through a temporary file, so a failed export leaves none)."""
    rows = 0

    def count(n: int) -> None:
        nonlocal rows
        rows += n

    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    try:
        with open(tmp, "wb") as out:
            for chunk in stream(batches, fmt, count):
                out.write(chunk)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return rows
