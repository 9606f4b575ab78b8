"""bench/notify throughput: notifications planned and delivered per second, in one process.

    .venv/bin/python -m bench.notify.throughput [--alerts 5000] [--stores sqlite,postgres]

Fresh store, one json:// channel on a webhook receiver in its own process, grouping off so each
alert is its own message. Planning is the worker's notify hook over a batch of N new alerts
(targets resolved, templates rendered, rows written); delivery is the deliverer's rounds until
every row is sent (claimed, posted through Apprise, each attempt recorded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.notify.__main__ import arrivals
from bench.stack import ROOT, free_port, fresh_store

RULES = 'rule source "{{ title }}"\n  when kind == "alert"\n  team bench\n  notify hook\nend\n'


def measure(store: str, alerts: int) -> dict[str, Any]:
    with fresh_store(store, "klaxon-bench-notify-tp-") as (tmp, db_url):
        return _measure(store, alerts, tmp, db_url)


def _measure(store: str, alerts: int, tmp: Path, db_url: str) -> dict[str, Any]:
    os.environ["KLAXON_DATA_DIR"] = str(tmp)
    os.environ.setdefault("KLAXON_SECRET_KEY", "bench-notify-throughput-key")
    os.environ["KLAXON_DATABASE_URL"] = db_url
    (tmp / "rules.klx").write_text(RULES, encoding="utf-8")

    from engine.auth.principal import SYSTEM
    from engine.config import Settings
    from engine.normalize import normalize
    from engine.notify.channels import add_channel
    from engine.notify.deliver import Deliverer, Round
    from engine.notify.enqueue import NotifyHook
    from engine.store.db import Database
    from engine.store.events import insert_events
    from engine.store.migrate import upgrade
    from engine.worker import Worker

    port = free_port()
    received = tmp / "received.txt"
    received.touch()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.notify.receiver", str(port), str(received)], cwd=ROOT
    )
    db = Database(db_url)
    try:
        upgrade(db)
        settings = replace(
            Settings.load(), database_url=db_url, rules_file=str(tmp / "rules.klx"), data_dir=tmp
        )
        settings = replace(settings, batch_size=max(settings.batch_size, alerts))
        with db.connect() as conn:
            add_channel(
                conn, SYSTEM, "hook", f"json://127.0.0.1:{port}/hook", grouping={"interval_s": 0}
            )
        events = [
            {"kind": "alert", "title": f"tp-{i}", "severity": "high", "service": "bench"}
            for i in range(alerts)
        ]
        frame = normalize("webhook", events, received_at=datetime.now(UTC)).events
        with db.connect() as conn:
            insert_events(conn, frame)
        hook = NotifyHook(settings)
        planning = [0.0]

        def timed(*args: Any) -> None:
            started = time.perf_counter()
            hook(*args)
            planning[0] += time.perf_counter() - started

        worker = Worker(db, settings, hooks=[timed])
        cpu = time.process_time()
        while worker.step():
            pass
        step_cpu = time.process_time() - cpu
        with db.read() as conn:
            planned = conn.execute(sa.text("select count(*) from notifications")).scalar_one()
        deliverer = Deliverer(db, settings)
        total = Round()
        started = time.perf_counter()
        cpu = time.process_time()
        while total.sent + total.dead < planned:
            r = deliverer.deliver_due(500)
            total.sent += r.sent
            total.dead += r.dead
            if r.claimed == 0:
                time.sleep(0.01)
        delivering = time.perf_counter() - started
        delivering_cpu = time.process_time() - cpu
        deliverer.close()
        deadline = time.monotonic() + 10
        while len(arrivals(received)) < total.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        return {
            "receiver_cpu_s": _cpu_of(receiver.pid),
            "store": store,
            "alerts": alerts,
            "planned": int(planned),
            "planning_s": planning[0],
            "batch_cpu_s": step_cpu,
            "sent": total.sent,
            "dead": total.dead,
            "delivering_s": delivering,
            "delivering_cpu_s": delivering_cpu,
            "received": len(arrivals(received)),
            "load": round(os.getloadavg()[0], 1),
        }
    finally:
        db.dispose()
        receiver.terminate()
        receiver.wait(timeout=10)


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(r: dict[str, Any]) -> str:
    return (
        f"{r['store']}: {r['alerts']:,} new alerts in one batch (load average {r['load']})\n"
        f"  planned {r['planned']:,} rows in {r['planning_s']:.2f} s "
        f"({r['planned'] / r['planning_s']:,.0f} rows/s; the whole batch took "
        f"{r['batch_cpu_s']:.2f} s of CPU)\n"
        f"  delivered {r['sent']:,} messages in {r['delivering_s']:.2f} s "
        f"({r['sent'] / r['delivering_s']:,.0f} messages/s, "
        f"{r['delivering_cpu_s'] / max(r['sent'], 1) * 1000:.2f} ms of CPU each in this process); "
        f"the receiver {r['receiver_cpu_s'] / max(r['sent'], 1) * 1000:.2f} ms each; "
        f"dead {r['dead']}, "
        f"received {r['received']:,}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify.throughput")
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    ok = True
    for store in args.stores.split(","):
        # One store per process: settings and the secret key are read once per process.
        done = subprocess.run(
            [sys.executable, "-c", _ONE, store, str(args.alerts)], cwd=ROOT, check=False
        )
        ok = ok and done.returncode == 0
    return 0 if ok else 1


_ONE = """
import sys
from bench.notify.throughput import measure, report
r = measure(sys.argv[1], int(sys.argv[2]))
print(report(r), flush=True)
sys.exit(0 if r["sent"] == r["planned"] == r["received"] else 1)
"""


if __name__ == "__main__":
    raise SystemExit(main())
