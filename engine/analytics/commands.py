"""`klaxon export`, `backtest`, `report` and `analytics`: the analytics commands.

    klaxon export alerts|analytics|audit --format csv|parquet|json --output PATH [filters]
    klaxon backtest --rules FILE --from TS --to TS [--json]
    klaxon report --from TS --to TS --output report.pdf [filters]
    klaxon analytics mttr|mtta|...|delivery [--by DIM] [--bucket day|week] [filters] [--json]
    klaxon analytics refresh [--rebuild]     # bring the Parquet snapshot up to date
    klaxon analytics reports                  # send the scheduled reports that are due now

Filters: --team, --service, --severity, --source, --rule (repeat or comma-separate). Times are
RFC 3339. The commands act with the store's full rights, as `klaxon` itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMATS = ("csv", "parquet", "json")
METRICS = (
    "dashboard",
    "mtta",
    "mttr",
    "mttd",
    "volume",
    "noise",
    "flapping",
    "sla",
    "teams",
    "delivery",
)


def add_parsers(sub: Any) -> None:
    """Register the subcommands on `klaxon`'s argparse subparsers."""
    p = sub.add_parser(
        "export", help="alerts, an analytics table or the audit log as CSV, Parquet or JSON"
    )
    p.add_argument("what", choices=("alerts", "analytics", "audit"))
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument(
        "--output", required=True, metavar="PATH", help="the file to write, or - for stdout"
    )
    p.add_argument("--metric", choices=METRICS, help="for analytics: which answer")
    p.add_argument(
        "--table", help="for analytics: which table of the answer (default: the main one)"
    )
    _period(p, required=False)
    _filters(p)

    p = sub.add_parser("backtest", help="run a rules file over a past period's stored events")
    p.add_argument("--rules", required=True, metavar="FILE")
    _period(p, required=True)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument(
        "--progress", action="store_true", help="report progress on stderr even if quick"
    )

    p = sub.add_parser("report", help="write the PDF report of a period")
    _period(p, required=True)
    p.add_argument("--output", required=True, metavar="PATH")
    _filters(p)

    p = sub.add_parser(
        "analytics", help="print an analytics answer; refresh the snapshot; run due reports"
    )
    p.add_argument("what", choices=(*METRICS, "refresh", "reports"))
    p.add_argument("--by", help="mtta, mttr, mttd, volume, sla: group by this dimension")
    p.add_argument("--bucket", default="day", help="day or week (default: day)")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.add_argument(
        "--rebuild", action="store_true", help="refresh: read every table again from the store"
    )
    _period(p, required=False)
    _filters(p)


def _period(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "--from", dest="start", required=required, metavar="TS", help="start, included (RFC 3339)"
    )
    p.add_argument(
        "--to", dest="end", required=required, metavar="TS", help="end, excluded (RFC 3339)"
    )


def _filters(p: argparse.ArgumentParser) -> None:
    for name in ("team", "service", "severity", "source", "rule"):
        p.add_argument(f"--{name}", action="append", metavar=name.upper())


def _error(message: str) -> Exception:
    from engine.cli import CliError

    return CliError(message)


def _time(value: str | None, flag: str) -> datetime | None:
    from engine.schema import EventValidationError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value, flag)
    except EventValidationError:
        raise _error(
            f"{flag}: not an RFC 3339 time: {value!r} (e.g. 2026-03-01T00:00:00Z)"
        ) from None


def _context() -> tuple[Any, Any, Any]:
    from engine.analytics.warehouse import Warehouse
    from engine.config import settings
    from engine.store.db import Database

    config = settings()
    db = Database(config.database_url)
    return config, db, Warehouse(db, config.data_dir)


def _filters_of(args: argparse.Namespace, *, whole_history: bool) -> Any:
    from engine.analytics.errors import AnalyticsQueryError
    from engine.analytics.export import EPOCH, FOREVER
    from engine.analytics.filters import Filters

    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if whole_history:
        start, end = start or EPOCH, end or FOREVER
    try:
        return Filters.of(
            start=start,
            end=end,
            team=args.team,
            service=args.service,
            severity=args.severity,
            source=args.source,
            rule=args.rule,
            bucket=getattr(args, "bucket", "day"),
        )
    except AnalyticsQueryError as err:
        raise _error(f"--{'from' if err.field in ('from', 'to') else err.field}: {err}") from None


def run_export(args: argparse.Namespace) -> int:
    from engine.analytics import export
    from engine.analytics.errors import AnalyticsQueryError
    from engine.auth.principal import SYSTEM

    _, db, wh = _context()
    started = time.perf_counter()
    try:
        if args.what == "alerts":
            batches = export.alert_batches(wh, _filters_of(args, whole_history=True))
        elif args.what == "audit":
            batches = export.audit_batches(
                db, SYSTEM, _time(args.start, "--from"), _time(args.end, "--to")
            )
        else:
            if not args.metric:
                raise _error(f"--metric: say which analytics table: {', '.join(METRICS)}")
            rows = export.analytics_rows(
                wh, db, args.metric, _filters_of(args, whole_history=False), args.table
            )
            batches = iter([export.table_of(rows)])
        if args.output == "-":
            out = sys.stdout.buffer
            for chunk in export.stream(batches, args.format):
                out.write(chunk)
            out.flush()
            return 0
        path = Path(args.output)
        if not path.parent.is_dir():
            raise _error(f"--output: no such folder: {path.parent}")
        rows_written = export.write(batches, args.format, path)
    except AnalyticsQueryError as err:
        raise _error(f"--{err.field}: {err}") from None
    finally:
        db.dispose()
    took = time.perf_counter() - started
    print(
        f"wrote {rows_written:,} rows to {path} ({path.stat().st_size:,} bytes) in {took:.2f} s",
        file=sys.stderr,
    )
    return 0


class _Progress:
    """Progress on stderr, at most twice a second, once a run has taken a second (or always)."""

    def __init__(self, always: bool) -> None:
        self.always = always
        self.started = time.monotonic()
        self.shown = 0.0
        self.printed = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.always and now - self.started < 1.0:
            return
        if now - self.shown < 0.5 and done < total:
            return
        self.shown = now
        share = f" ({done / total:.0%})" if total else ""
        print(
            f"\rbacktest: {done:,} of {total:,} events{share}", end="", file=sys.stderr, flush=True
        )
        self.printed = True

    def close(self) -> None:
        if self.printed:
            print(file=sys.stderr)


def run_backtest(args: argparse.Namespace) -> int:
    import orjson

    from dsl import check_rules
    from engine.analytics.backtest import backtest
    from engine.analytics.errors import AnalyticsQueryError
    from engine.cli import _read

    text = _read(args.rules)
    errors = check_rules(text, args.rules)
    if errors:
        for err in errors:
            print(err, file=sys.stderr)
        raise _error(
            f"{args.rules} does not compile: {len(errors)} error{'s' if len(errors) != 1 else ''}"
        )
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if start is None or end is None:  # argparse requires both
        raise _error("--from and --to are required")
    config, db, wh = _context()
    progress = _Progress(args.progress)
    try:
        result = backtest(
            db, wh, text, start, end, default_rules=config.rules_file, progress=progress
        )
    except AnalyticsQueryError as err:
        raise _error(f"--{'to' if err.field == 'to' else err.field}: {err}") from None
    finally:
        progress.close()
        db.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(render_backtest(result))
    return 0


def render_backtest(result: dict[str, Any]) -> str:
    """The backtest as aligned text tables."""
    head = (
        f"backtest {result['from']} to {result['to']}: "
        f"{result['events']:,} events in {result['seconds']:.2f} s"
        + (" (the current rules: no difference to compare)" if result["same_as_current"] else "")
    )
    columns = (
        "rule",
        "alerts",
        "current",
        "change",
        "pages",
        "current",
        "change",
        "muted",
        "resolved",
        "incidents",
        "stored",
    )
    rows = [
        (
            r["rule"],
            r["alerts"],
            r["current_alerts"],
            _signed(r["alerts_change"]),
            r["pages"],
            r["current_pages"],
            _signed(r["pages_change"]),
            r["muted"],
            r["resolved"],
            r["incidents"],
            r["stored_alerts"],
        )
        for r in result["rules"]
    ]
    t = result["totals"]
    rows.append(
        (
            "total",
            t["alerts"],
            t["current_alerts"],
            _signed(t["alerts"] - t["current_alerts"]),
            t["pages"],
            t["current_pages"],
            _signed(t["pages"] - t["current_pages"]),
            "",
            "",
            "",
            t["stored_alerts"],
        )
    )
    out = [head, "", _table(columns, rows)]
    if result["channels"]:
        out += [
            "",
            "pages per channel",
            _table(
                ("channel", "pages", "current", "change"),
                [
                    (c["channel"], c["pages"], c["current_pages"], _signed(c["pages_change"]))
                    for c in result["channels"]
                ],
            ),
        ]
    if result["people"]:
        out += [
            "",
            "pages per person",
            _table(
                ("person", "pages", "current", "change"),
                [
                    (p["person"], p["pages"], p["current_pages"], _signed(p["pages_change"]))
                    for p in result["people"]
                ],
            ),
        ]
    if result["unresolved_targets"]:
        out += [
            "",
            "targets that reach nobody: "
            + ", ".join(f"{u['target']} ({u['pages']})" for u in result["unresolved_targets"]),
        ]
    return "\n".join(out)


def _signed(n: int) -> str:
    return f"{n:+d}" if n else "0"


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in headers)] + [
        tuple(f"{c:,}" if isinstance(c, int) else str(c) for c in r) for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_report(args: argparse.Namespace) -> int:
    from engine.analytics.report import build_report

    filters = _filters_of(args, whole_history=False)
    path = Path(args.output)
    if not path.parent.is_dir():
        raise _error(f"--output: no such folder: {path.parent}")
    _, db, wh = _context()
    try:
        started = time.perf_counter()
        pdf = build_report(db, wh, filters, now=datetime.now(UTC))
    finally:
        db.dispose()
    path.write_bytes(pdf)
    print(
        f"wrote {path} ({len(pdf):,} bytes) in {time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )
    return 0


def run_analytics(args: argparse.Namespace) -> int:
    import orjson

    from engine.analytics import export
    from engine.analytics.errors import AnalyticsQueryError
    from engine.analytics.filters import dimension

    if args.what in ("refresh", "reports"):
        return _maintain(args)
    try:
        by = dimension(args.by, "by")
    except AnalyticsQueryError as err:
        raise _error(f"--by: {err}") from None
    if by and args.what not in ("mtta", "mttr", "mttd", "volume", "sla"):
        raise _error(f"--by: {args.what} cannot be grouped; mtta, mttr, mttd, volume and sla can")
    filters = _filters_of(args, whole_history=False)
    _, db, wh = _context()
    try:
        answer, tables = export.analytics_answer(wh, db, args.what, filters, by)
    except AnalyticsQueryError as err:
        raise _error(f"--{err.field}: {err}") from None
    finally:
        db.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{args.what} from {filters.to_dict()['from']} to {filters.to_dict()['to']}")
    headline = {k: v for k, v in answer.items() if k not in (*tables, "filters", "targets")}
    for key, val in headline.items():
        if isinstance(val, dict):
            val = ", ".join(f"{k} {_cell(v)}" for k, v in val.items())
        print(f"  {key}: {_cell(val) if not isinstance(val, str) else val}")
    for name in tables:
        rows = export.table_of(answer.get(name) or [])
        print(f"\n{name} ({rows.height} rows)")
        if rows.height:
            print(
                _table(
                    tuple(rows.columns),
                    [tuple(_cell(c) for c in r) for r in rows.head(50).iter_rows()],
                )
            )
    return 0


def _cell(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return value


def _maintain(args: argparse.Namespace) -> int:
    config, db, wh = _context()
    started = time.perf_counter()
    try:
        if args.what == "refresh":
            manifest = wh.snapshots.rebuild() if args.rebuild else wh.refresh()
            took = time.perf_counter() - started
            for name, state in manifest.tables.items():
                rows = sum(p.rows for p in state.parts.values()) + state.delta_rows
                print(
                    f"{name}: {rows:,} rows ({len(state.parts)} partitions, delta {state.delta_rows:,})"
                )
            print(
                f"snapshot generation {manifest.generation} under {wh.snapshots.root} in {took:.2f} s"
            )
            return 0
        from engine.analytics.schedules import run_due_reports

        results = run_due_reports(db, data_dir=config.data_dir)
    finally:
        db.dispose()
    if not results:
        print("no scheduled report is due")
    for r in results:
        state = "sent" if r.get("sent") else f"NOT sent ({r.get('error') or 'delivery failed'})"
        print(f"{r['name']}: {r['from']} to {r['to']}: {state}")
    return 0 if all(r.get("sent") for r in results) else 1
