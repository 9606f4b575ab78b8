"""bench/ingest: HTTP → stored alert, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.ingest [--stores sqlite,postgres] [--seconds 20]

Starts `klaxon api` and `klaxon worker` as real processes on a fresh store, then measures:
  1. batch-100: sustained alerts/s, 100 alerts a request, 8 concurrent clients, counted from
     the first request until the worker has stored every alert;
  2. batch-1: one alert a request, driven by wrk (Debian package) when present, else by a
     minimal asyncio HTTP/1.1 client (16 keep-alive connections, a few µs a request);
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
from datetime import UTC, datetime, timedelta
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


class _Conn:
    """One keep-alive HTTP/1.1 connection that POSTs JSON: a few µs of client CPU a request,
    where httpx spends about a millisecond (on 2 cores the client competes with the server)."""

    def __init__(self, url: str, key: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self.head = (
            "POST /api/v1/events HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> None:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        if not status.split()[1].startswith(b"2"):
            raise RuntimeError(f"{status.decode().strip()}: {answer[:200]!r}")


async def _post_batches(
    r: Running, seconds: float, batch: int, concurrency: int
) -> tuple[int, float, float]:
    """Post for `seconds` from `concurrency` connections; returns (alerts accepted, start, end)."""
    sent = 0
    stop_at = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal sent
        conn = _Conn(r.url, r.key)
        i = 0
        while time.monotonic() < stop_at:
            body = [_alert(f"b{batch}-{n}-{i}-{j}") for j in range(batch)]
            await conn.post(json.dumps(body).encode())
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


async def _latency(r: Running, per_minute: int, seconds: float) -> tuple[list[float], list[float]]:
    """POST one alert a request, paced; measure POST → visible in the alert list.

    Open loop: each alert is posted at its time whether or not earlier requests have been
    answered (many sources, not one client waiting on each response). The watcher asks only
    for alerts created since the oldest one it has not seen yet (minus a margin), oldest
    first, as a client tailing the list would: asking for the newest 1,000 every 20 ms cost
    the API ~100 ms of CPU a poll and made the watcher the API's main load.
    """
    interval = 60 / per_minute
    sent: dict[str, float] = {}
    sent_at: dict[str, datetime] = {}
    seen: dict[str, float] = {}
    answered: dict[str, float] = {}
    stop = asyncio.Event()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(32):
        idle.put_nowait(_Conn(r.url, r.key))
    async with httpx.AsyncClient(
        base_url=r.url, headers={"Authorization": f"Bearer {r.key}"}, timeout=30
    ) as c:

        async def post(fp: str) -> None:
            body = json.dumps([_alert(fp)]).encode()
            conn = await idle.get()
            sent_at[fp] = datetime.now(UTC)
            sent[fp] = time.monotonic()
            try:
                await conn.post(body)
                answered[fp] = time.monotonic()
            finally:
                idle.put_nowait(conn)

        async def sender() -> None:
            t = time.monotonic()
            n = 0
            posts = []
            while time.monotonic() - t < seconds:
                posts.append(asyncio.create_task(post(f"lat-{n}")))
                n += 1
                await asyncio.sleep(max(0.0, t + n * interval - time.monotonic()))
            await asyncio.gather(*posts)
            stop.set()

        async def watcher() -> None:
            while not stop.is_set() or len(seen) < len(sent):
                unseen = [sent_at[fp] for fp in list(sent) if fp not in seen]
                cursor = None
                while unseen:
                    params: dict[str, str | int] = {
                        "since": (min(unseen) - timedelta(seconds=1)).isoformat(),
                        "limit": 1000,
                        "source": "bench",
                        "order": "asc",
                    }
                    if cursor:
                        params["cursor"] = cursor
                    page = (await c.get("/api/v1/alerts", params=params)).json()
                    now = time.monotonic()
                    for item in page["items"]:
                        fp = item["fingerprint"]
                        if fp in sent and fp not in seen:
                            seen[fp] = now
                    cursor = page["next"]
                    if not cursor:
                        break
                await asyncio.sleep(0.02)
                if stop.is_set() and time.monotonic() - max(sent.values()) > 30:
                    break

        await asyncio.gather(sender(), watcher())
    return (
        sorted(seen[fp] - sent[fp] for fp in seen),
        sorted(answered[fp] - sent[fp] for fp in answered),
    )


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _batch100(store: str, seconds: float) -> None:
    with running(store) as r:
        n, start, _ = asyncio.run(_post_batches(r, seconds, 100, 8))
        done = _drain(r, n)
        print(
            f"[{store}] batch-100: {n:,} alerts accepted in {seconds:.0f} s = {n / seconds:,.0f} alerts/s accepted; "
            f"all stored as alerts after {done - start:.1f} s = {n / (done - start):,.0f} alerts/s end to end"
        )


def _batch1(store: str, seconds: float) -> None:
    with running(store) as r:
        result = _wrk_batch1(r, int(seconds))
        if result is None:
            result = asyncio.run(_post_batches(r, seconds, 1, 16))
            tool = "raw asyncio client, 16 connections"
        else:
            tool = "wrk -t2 -c16"
        n, start, end = result
        done = _drain(r, n)
        print(
            f"[{store}] batch-1 ({tool}): {n:,} requests in {end - start:.0f} s = {n / (end - start):,.0f} alerts/s accepted; "
            f"stored as alerts {n / (done - start):,.0f} alerts/s end to end"
        )


def _latency_run(store: str, seconds: float, per_minute: int) -> None:
    with running(store) as r:
        lat, answer = asyncio.run(_latency(r, per_minute, seconds))
        print(
            f"[{store}] latency at {per_minute:,} alerts/min over {seconds:.0f} s ({len(lat)} alerts): "
            f"p50 {1000 * statistics.median(lat):.0f} ms, p99 {1000 * _pct(lat, 0.99):.0f} ms, max {1000 * lat[-1]:.0f} ms "
            f"(the POST's own answer: p50 {1000 * statistics.median(answer):.0f} ms, p99 {1000 * _pct(answer, 0.99):.0f} ms)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--latency-seconds", type=float, default=60)
    ap.add_argument("--latency-rate", type=int, default=10_000, help="alerts a minute")
    ap.add_argument(
        "--measures",
        default="batch100,batch1,latency",
        help="which of batch100, batch1, latency to run (comma-separated)",
    )
    args = ap.parse_args()
    measures = set(args.measures.split(","))
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}")
    for store in args.stores.split(","):
        if "batch100" in measures:
            _batch100(store, args.seconds)
        if "batch1" in measures:
            _batch1(store, args.seconds)
        if "latency" in measures:
            _latency_run(store, args.latency_seconds, args.latency_rate)


if __name__ == "__main__":
    main()
