"""bench/ingest: HTTP → stored alert, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.ingest [--stores sqlite,postgres] [--seconds 20]

Starts `klaxon api` and `klaxon worker` as real processes on a fresh store, then measures:
  1. batch-100: sustained alerts/s, 100 alerts a request, 8 concurrent clients, counted from
     the first request until the worker has stored every alert;
  2. batch-1: one alert a request, driven by wrk (Debian package) when present, else by an
     asyncio client (which tops out near a few hundred requests/s on its own);
  3. latency at 10,000 alerts/min: one alert a request, paced, and the time from each POST to
     the moment the alert is visible in GET /api/v1/alerts (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.stack import api_and_worker, fresh_store


@dataclass
class Running:
    url: str
    key: str
    db_url: str


@contextmanager
def running(store: str) -> Iterator[Running]:
    with fresh_store(store, "klaxon-bench-") as (tmp, db_url):
        env = {
            **os.environ,
            "KLAXON_DATA_DIR": str(tmp),
            "KLAXON_DATABASE_URL": db_url,
            "KLAXON_BATCH_WAIT_MS": "50",
            "KLAXON_RATE_LIMIT_PER_MIN": "100000000",
        }
        with api_and_worker(env, tmp / "procs.log") as (url, key):
            yield Running(url, key, db_url)


def _alert(fp: str) -> dict[str, object]:
    return {
        "ts": datetime.now(UTC).isoformat(),
        "kind": "alert",
        "source": "bench",
        "title": f"Bench {fp}",
        "severity": "high",
        "service": "bench",
        "fingerprint": fp,
    }


def _count(db_url: str) -> tuple[int, int]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        alerts = conn.execute(sa.text("select count(*) from alerts")).scalar_one()
        inbox = conn.execute(sa.text("select count(*) from inbox")).scalar_one()
    engine.dispose()
    return int(alerts), int(inbox)


def _drain(r: Running, want: int, timeout: float = 600) -> float:
    """Seconds until the store holds `want` alerts and the inbox is empty."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        alerts, inbox = _count(r.db_url)
        if alerts >= want and inbox == 0:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"only {alerts} of {want} alerts after {timeout} s")


async def _post_batches(
    r: Running, seconds: float, batch: int, concurrency: int
) -> tuple[int, float, float]:
    """Post for `seconds`; returns (alerts accepted, start, end)."""
    sent = 0
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=r.url, headers={"Authorization": f"Bearer {r.key}"}, limits=limits, timeout=60
    ) as c:

        async def client(n: int) -> None:
            nonlocal sent
            i = 0
            while time.monotonic() < stop_at:
                body = [_alert(f"b{batch}-{n}-{i}-{j}") for j in range(batch)]
                resp = await c.post(
                    "/api/v1/events",
                    content=json.dumps(body),
                    headers={"content-type": "application/json"},
                )
                resp.raise_for_status()
                sent += batch
                i += 1

        start = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(concurrency)))
    return sent, start, time.monotonic()


def _wrk_batch1(r: Running, seconds: int) -> tuple[int, float, float] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        "local threads = 0\n"
        'setup = function(thread) threads = threads + 1; thread:set("tid", threads) end\n'
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  local body = string.format(\'{"kind":"alert","source":"bench","title":"wrk","severity":"high","fingerprint":"w%d-%d"}\', tid, counter)\n'
        f'  return wrk.format("POST", "/api/v1/events", {{["Authorization"]="Bearer {r.key}", ["Content-Type"]="application/json"}}, body)\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("WRK %d %d\\n", summary.requests, summary.errors.status))\n'
        "end\n"
    )
    start = time.monotonic()
    out = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{seconds}s", "-s", str(script), r.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    end = time.monotonic()
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    _, requests, errors = line.split()
    return int(requests) - int(errors), start, end


async def _latency(r: Running, per_minute: int, seconds: float) -> list[float]:
    """POST one alert at a time, paced; measure POST → visible in the alert list."""
    interval = 60 / per_minute
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    start_iso = datetime.now(UTC).isoformat()
    stop = asyncio.Event()
    async with httpx.AsyncClient(
        base_url=r.url, headers={"Authorization": f"Bearer {r.key}"}, timeout=30
    ) as c:

        async def sender() -> None:
            t = time.monotonic()
            n = 0
            while time.monotonic() - t < seconds:
                fp = f"lat-{n}"
                sent[fp] = time.monotonic()
                (await c.post("/api/v1/events", json=[_alert(fp)])).raise_for_status()
                n += 1
                await asyncio.sleep(max(0.0, t + n * interval - time.monotonic()))
            stop.set()

        async def watcher() -> None:
            while not stop.is_set() or len(seen) < len(sent):
                page = (
                    await c.get(
                        "/api/v1/alerts",
                        params={"since": start_iso, "limit": 1000, "source": "bench"},
                    )
                ).json()
                now = time.monotonic()
                for item in page["items"]:
                    fp = item["fingerprint"]
                    if fp in sent and fp not in seen:
                        seen[fp] = now
                await asyncio.sleep(0.02)
                if stop.is_set() and time.monotonic() - sent[max(sent, key=sent.get)] > 30:
                    break

        await asyncio.gather(sender(), watcher())
    return sorted(seen[fp] - sent[fp] for fp in seen)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--latency-seconds", type=float, default=60)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}")
    for store in args.stores.split(","):
        with running(store) as r:
            n, start, _ = asyncio.run(_post_batches(r, args.seconds, 100, 8))
            done = _drain(r, n)
            print(
                f"[{store}] batch-100: {n:,} alerts accepted in {args.seconds:.0f} s = {n / args.seconds:,.0f} alerts/s accepted; "
                f"all stored as alerts after {done - start:.1f} s = {n / (done - start):,.0f} alerts/s end to end"
            )
        with running(store) as r:
            result = _wrk_batch1(r, int(args.seconds))
            if result is None:
                result = asyncio.run(_post_batches(r, args.seconds, 1, 16))
                tool = "asyncio client"
            else:
                tool = "wrk -t2 -c16"
            n, start, end = result
            done = _drain(r, n)
            print(
                f"[{store}] batch-1 ({tool}): {n:,} requests in {end - start:.0f} s = {n / (end - start):,.0f} alerts/s accepted; "
                f"stored as alerts {n / (done - start):,.0f} alerts/s end to end"
            )
        with running(store) as r:
            lat = asyncio.run(_latency(r, 10_000, args.latency_seconds))
            print(
                f"[{store}] latency at 10,000 alerts/min over {args.latency_seconds:.0f} s ({len(lat)} alerts): "
                f"p50 {1000 * statistics.median(lat):.0f} ms, p99 {1000 * _pct(lat, 0.99):.0f} ms, max {1000 * lat[-1]:.0f} ms"
            )


if __name__ == "__main__":
    main()
