"""`python -m bench.analytics`: dashboard latency at 1M and 10M alerts, backtest, export, snapshots.

    .venv/bin/python -m bench.analytics                 # everything (about 15 minutes)
    .venv/bin/python -m bench.analytics --sizes 1000000 --skip-store --json out.json

(a) Every dashboard query (the ten /api/v1/analytics routes) over snapshots of 1M and 10M
    generated alerts (written straight as snapshot partitions), for the last 30 days and for
    the whole year; best and median of 5 runs after a warm-up. Goal: every one under 1 s.
(b) Backtest: the proposed and the current rules over 1,000,000 events of 30 days. Goal < 10 s.
(c) Export throughput: the alerts of 30 days (and of the whole 1M year) as CSV, Parquet, JSON.
(d) How data reaches DuckDB: 1M alerts inserted into SQLite, the full snapshot build, an
    incremental refresh after 1,000 changes, and the longest write transaction an ingest-like
    writer saw while the build read the store (analytics must never block ingestion).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from sqlalchemy import insert

from bench.analytics import generate as gen
from engine.analytics import backtest as bt
from engine.analytics import export
from engine.analytics.dashboard import dashboard
from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.metrics import response_times
from engine.analytics.noise import flapping, noise
from engine.analytics.rollup import ROLLUP_VERSION
from engine.analytics.sla import DEFAULT_TARGETS, sla
from engine.analytics.snapshot import PART_IDS, Manifest, Snapshots, TableState
from engine.analytics.tables import ALERTS, EVENTS, NOTIFICATIONS
from engine.analytics.teams import people, team_load
from engine.analytics.volume import volume
from engine.analytics.warehouse import Warehouse
from engine.auth.principal import SYSTEM
from engine.notify.schedules import create_schedule
from engine.store import rules as rules_store
from engine.store.db import Database
from engine.store.migrate import upgrade
from engine.store.models import Channel, Team, TeamMember, User

RUNS = 5


def timed(fn: Callable[[], Any], runs: int | None = None) -> dict[str, float]:
    runs = runs or RUNS
    fn()  # warm-up: file metadata and OS caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"best_ms": min(times) * 1000, "median_ms": statistics.median(times) * 1000}


# ---------------------------------------------------------------- the store and the snapshot


def make_store(folder: Path) -> Database:
    """An empty store with teams, people, channels, an on-call schedule and the current rules."""
    db = Database(f"sqlite:///{folder / 'klaxon.db'}")
    upgrade(db)
    with db.connect() as conn:
        conn.execute(
            insert(User).values(
                email="oncall@example.com",
                name="oncall",
                role="operator",
                contact_channels=["pager"],
            )
        )
        for t in range(20):
            team_id = conn.execute(
                insert(Team)
                .values(name=f"team-{t}", quiet_hours={"tz": "Europe/Berlin"})
                .returning(Team.id)
            ).scalar_one()
            for m in range(5):
                user_id = conn.execute(
                    insert(User)
                    .values(email=f"u{t}-{m}@example.com", name=f"u{t}-{m}", role="operator")
                    .returning(User.id)
                ).scalar_one()
                conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))
        for name in ("slack_ops", "ops_email", "pager"):
            conn.execute(
                insert(Channel).values(name=name, kind="chat", url_encrypted="x", url_masked="x")
            )
        create_schedule(
            conn,
            SYSTEM,
            "primary",
            rotation={"users": ["oncall@example.com"], "start": "2026-01-05"},
        )
        rules_store.save(conn, gen.RULES_CURRENT, actor="bench")
    return db


def write_snapshot(db: Database, data_dir: Path, n_alerts: int, n_events: int) -> dict[str, Any]:
    """Generated tables written straight as snapshot partitions, then a manifest naming them."""
    snap = Snapshots(db, data_dir)
    snap.targets = DEFAULT_TARGETS  # what the store holds: rollups count breaches of these
    started = time.perf_counter()
    tables = {"alerts": TableState(), "notifications": TableState(), "events": TableState()}
    next_notification = 1
    for p in range((n_alerts + PART_IDS - 1) // PART_IDS):
        size = min(PART_IDS, n_alerts - p * PART_IDS)
        frame = gen.alerts(size, first_id=p * PART_IDS + 1, total=n_alerts)
        tables["alerts"].parts[p] = snap._write_part(ALERTS, frame, p, 1)
        notes = gen.notifications(frame, first_id=next_notification)
        for q, rows in (
            notes.with_columns(_p=(pl.col("id") - 1) // PART_IDS)
            .partition_by("_p", as_dict=True)
            .items()
        ):
            part = int(q[0])  # type: ignore[call-overload]
            old = tables["notifications"].parts.get(part)
            rows = rows.drop("_p")
            if old is not None:
                rows = pl.concat([pl.read_parquet(snap.path(old.file)), rows])
            tables["notifications"].parts[part] = snap._write_part(NOTIFICATIONS, rows, part, 1)
        next_notification += notes.height
    events = gen.event_snapshot_rows(gen.events(n_events, gen.start_of_month()))
    for p in range((n_events + PART_IDS - 1) // PART_IDS):
        tables["events"].parts[p] = snap._write_part(
            EVENTS, events.slice(p * PART_IDS, PART_IDS), p, 1
        )
    for name, state in tables.items():
        state.hi_id = max((part.max_id for part in state.parts.values()), default=0)
        del name
    manifest = Manifest(1, "2100-01-01T00:00:00+00:00", pl.__version__, tables)
    manifest.sla_targets, manifest.rollups = DEFAULT_TARGETS, ROLLUP_VERSION
    snap.root.mkdir(parents=True, exist_ok=True)
    snap.manifest_path.write_bytes(manifest.to_json())
    size = sum(p.stat().st_size for p in snap.root.rglob("*.parquet"))
    return {
        "alerts": n_alerts,
        "notifications": next_notification - 1,
        "events": n_events,
        "seconds": time.perf_counter() - started,
        "parquet_mb": size / 1e6,
    }


def generated(folder: Path, n_alerts: int, n_events: int) -> tuple[Database, dict[str, Any]]:
    """The store and snapshot of `n_alerts` in `folder`: written once, reused while it is there."""
    done = folder / "written.json"
    if done.exists():
        db = Database(f"sqlite:///{folder / 'klaxon.db'}")
        snap = Snapshots(db, folder / "data")
        manifest = snap.manifest()
        if manifest is not None:
            if (manifest.sla_targets, manifest.rollups) != (DEFAULT_TARGETS, ROLLUP_VERSION):
                for table in ("alerts", "notifications"):  # rolled up by an older version
                    for part in manifest.tables[table].parts.values():
                        part.rollup = False
                manifest.sla_targets, manifest.rollups = DEFAULT_TARGETS, ROLLUP_VERSION
            snap.targets = DEFAULT_TARGETS
            added = [snap.add_rollups(manifest.tables[t]) for t in ("alerts", "notifications")]
            if any(added):  # written before rollups existed
                snap.manifest_path.write_bytes(manifest.to_json())
            return db, dict(json.loads(done.read_text()))
        db.dispose()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    db = make_store(folder)
    written = write_snapshot(db, folder / "data", n_alerts, n_events)
    done.write_text(json.dumps(written))
    return db, written


# ---------------------------------------------------------------- (a) dashboard queries


def bench_queries(db: Database, wh: Warehouse, only: set[str] | None = None) -> dict[str, Any]:
    with db.read() as conn:
        teams, members = people(conn)
    periods = {
        "30 days": Filters.of(start=gen.END - timedelta(days=30), end=gen.END),
        "year": Filters.of(start=gen.END - timedelta(days=366), end=gen.END, bucket="week"),
    }
    queries: dict[str, Callable[[Filters], Any]] = {
        "dashboard": lambda f: dashboard(wh, f, DEFAULT_TARGETS, now=gen.END),
        "mtta": lambda f: response_times(wh, f, "mtta"),
        "mttr": lambda f: response_times(wh, f, "mttr"),
        "mttd": lambda f: response_times(wh, f, "mttd"),
        "volume": lambda f: volume(wh, f),
        "noise": lambda f: noise(wh, f),
        "flapping": lambda f: flapping(wh, f),
        "sla": lambda f: sla(wh, f, DEFAULT_TARGETS, now=gen.END),
        "teams": lambda f: team_load(wh, f, teams, members),
        "delivery": lambda f: delivery(wh, f),
    }
    queries["mttr by team"] = lambda f: response_times(wh, f, "mttr", by="team")
    out: dict[str, Any] = {}
    for period, f in periods.items():
        for name, q in queries.items():
            if only is None or name in only:
                out[f"{name} / {period}"] = timed(lambda q=q, f=f: q(f))  # type: ignore[misc]
    return out


# ---------------------------------------------------------------- (b) backtest, (c) export


def bench_backtest(db: Database, wh: Warehouse) -> dict[str, Any]:
    start = gen.start_of_month()
    end = start + timedelta(days=30)
    out = {}
    runs = (
        ("proposed vs current, cold", gen.RULES_PROPOSED),
        ("proposed vs current, current run cached", gen.RULES_PROPOSED),
        ("current rules only", gen.RULES_CURRENT),
    )
    for name, text in runs:
        t = time.perf_counter()
        result = bt.backtest(db, wh, text, start, end)
        seconds = time.perf_counter() - t
        out[name] = {
            "seconds": seconds,
            "events": result["events"],
            "events_per_s": result["events"] / seconds,
            "alerts": result["totals"]["alerts"],
            "current_alerts": result["totals"]["current_alerts"],
            "pages": result["totals"]["pages"],
        }
    t = time.perf_counter()
    n = sum(b.height for b in bt.read_events(wh, start, end))
    out["read events only"] = {"seconds": time.perf_counter() - t, "events": n}
    return out


def bench_export(wh: Warehouse, folder: Path, days: int | None) -> dict[str, Any]:
    f = Filters.of(start=gen.END - timedelta(days=days or 400), end=gen.END)
    out = {}
    for fmt in export.FORMATS:
        path = folder / f"alerts.{fmt}"
        t = time.perf_counter()
        rows = export.write(export.alert_batches(wh, f), fmt, path)
        seconds = time.perf_counter() - t
        out[fmt] = {
            "rows": rows,
            "seconds": seconds,
            "rows_per_s": rows / seconds,
            "mb": path.stat().st_size / 1e6,
        }
        path.unlink()
    return out


# ---------------------------------------------------------------- (d) from the store


def _sqlite_insert(path: Path, frame: pl.DataFrame) -> None:
    con = sqlite3.connect(path)
    rows = frame.select(
        "rule",
        "key",
        "fingerprint",
        "title",
        "severity",
        "status",
        pl.col("is_open").cast(pl.Int8),
        "source",
        "service",
        "environment",
        "host",
        "team",
        "occurrences",
        "acknowledged_by",
        "resolved_by",
        "resolution",
        *[
            pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
            for c in (
                "first_seen",
                "last_seen",
                "source_started_at",
                "created_at",
                "acknowledged_at",
                "resolved_at",
                "updated_at",
            )
        ],
    ).rows()
    cols = "rule,key,fingerprint,title,severity,status,is_open,source,service,environment,host,team,occurrences,acknowledged_by,resolved_by,resolution,first_seen,last_seen,source_started_at,created_at,acknowledged_at,resolved_at,updated_at,description,labels,event_labels,escalation_level,notify,escalate,muted_by"
    fixed = ("", "{}", "{}", 0, "[]", "[]", "[]")
    con.executemany(
        f"INSERT INTO alerts ({cols}) VALUES ({','.join('?' * 30)})", (r + fixed for r in rows)
    )
    con.commit()
    con.close()


def bench_store(folder: Path, n: int) -> dict[str, Any]:
    db = make_store(folder)
    path = folder / "klaxon.db"
    t = time.perf_counter()
    open_keys: set[str] = set()
    for first in range(1, n + 1, 250_000):
        frame = gen.alerts(min(250_000, n - first + 1), first_id=first, total=n)
        # Another chunk may hold an open alert of the same series: only one may stay open.
        clash = pl.col("is_open") & pl.col("key").is_in(list(open_keys))
        frame = frame.with_columns(
            is_open=pl.col("is_open") & ~clash,
            status=pl.when(clash).then(pl.lit("resolved")).otherwise("status"),
            resolved_at=pl.when(clash).then("last_seen").otherwise("resolved_at"),
        )
        open_keys |= set(frame.filter("is_open")["key"].to_list())
        _sqlite_insert(path, frame)
    inserted = time.perf_counter() - t
    wh = Warehouse(db, folder / "data")
    # A writer doing what ingestion does: small write transactions, as fast as it can.
    latencies: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            with db.connect() as conn:
                conn.execute(
                    insert(Channel).values(
                        name=f"w{i}", kind="chat", url_encrypted="x", url_masked="x"
                    )
                )
            latencies.append(time.perf_counter() - t0)
            i += 1
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    t = time.perf_counter()
    wh.refresh()
    build = time.perf_counter() - t
    stop.set()
    thread.join()
    con = sqlite3.connect(path)
    con.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = updated_at, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id % 1000 = 7"
    )
    con.commit()
    changed = con.execute("SELECT changes()").fetchone()[0]
    con.close()
    t = time.perf_counter()
    manifest = wh.refresh()
    refresh = time.perf_counter() - t
    t = time.perf_counter()
    wh.refresh()
    idle = time.perf_counter() - t
    q = timed(
        lambda: response_times(
            wh, Filters.of(start=gen.END - timedelta(days=30), end=gen.END), "mtta"
        )
    )
    return {
        "alerts": n,
        "sqlite_insert_s": inserted,
        "full_build_s": build,
        "build_rows_per_s": n / build,
        "writer_transactions_during_build": len(latencies),
        "writer_max_ms": max(latencies) * 1000 if latencies else None,
        "writer_median_ms": statistics.median(latencies) * 1000 if latencies else None,
        "changed_rows": changed,
        "incremental_refresh_s": refresh,
        "delta_rows": manifest.tables["alerts"].delta_rows,
        "refresh_nothing_changed_s": idle,
        "mtta_30d_with_delta": q,
    }


# ---------------------------------------------------------------- main


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser(prog="python -m bench.analytics")
    parser.add_argument("--sizes", default="1000000,10000000", help="alert counts, comma-separated")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--skip-store", action="store_true", help="skip (d), the SQLite store phase"
    )
    parser.add_argument(
        "--runs", type=int, default=RUNS, help="timed runs per query (best, median)"
    )
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="keep the generated snapshots in DIR and reuse them on the next run (same sizes)",
    )
    parser.add_argument(
        "--only", help="time only these queries (comma-separated names, e.g. dashboard,flapping)"
    )
    parser.add_argument("--queries-only", action="store_true", help="skip backtest and exports")
    args = parser.parse_args()
    RUNS = args.runs
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, Polars {pl.__version__}",
        "load": os.getloadavg(),
    }
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(args.data) if args.data else Path(tmp)
        for size in [int(s) for s in args.sizes.split(",")]:
            folder = root / f"n{size}-e{args.events}"
            db, written = generated(folder, size, args.events)
            print(
                f"{size:,} alerts: snapshot written in {written['seconds']:.1f} s ({written['parquet_mb']:.0f} MB)",
                flush=True,
            )
            wh = Warehouse(db, folder / "data", max_age_s=1e9)
            entry: dict[str, Any] = {"snapshot": written, "queries": bench_queries(db, wh, only)}
            for name, r in entry["queries"].items():
                print(
                    f"  {name:32s} best {r['best_ms']:7.0f} ms   median {r['median_ms']:7.0f} ms",
                    flush=True,
                )
            if args.queries_only:
                pass
            elif size == min(int(s) for s in args.sizes.split(",")):
                entry["backtest"] = bench_backtest(db, wh)
                print(f"  backtest {json.dumps(entry['backtest'])}", flush=True)
                entry["export_year"] = bench_export(wh, folder, None)
                print(f"  export {json.dumps(entry['export_year'])}", flush=True)
            if not args.queries_only:
                entry["export_30d"] = bench_export(wh, folder, 30)
                print(f"  export 30 days {json.dumps(entry['export_30d'])}", flush=True)
            results[f"alerts_{size}"] = entry
            wh.close()
            db.dispose()
        if not args.skip_store:
            folder = root / "store"
            folder.mkdir()
            results["store"] = bench_store(folder, 1_000_000)
            print(f"store: {json.dumps(results['store'])}", flush=True)
    results["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
