"""Klaxon as it runs: `klaxon api` and `klaxon worker` as real processes on a real store.

Real Alertmanager payloads over HTTP become alerts within a second; a worker killed with
SIGKILL in the middle of a sustained load loses nothing and counts nothing twice.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYLOADS = Path(__file__).parents[1] / "payloads"
ROOT = Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _klaxon(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        **kw,
    )  # type: ignore[call-overload]


@dataclass
class System:
    url: str
    key: str
    env: dict[str, str]
    db_url: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        with open(Path(self.env["KLAXON_DATA_DIR"]) / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "engine", *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    port = _free_port()
    db_url = f"sqlite:///{tmp_path / 'klaxon.db'}"
    env = {
        **os.environ,
        "KLAXON_DATA_DIR": str(tmp_path),
        "KLAXON_DATABASE_URL": db_url,
        "KLAXON_BATCH_WAIT_MS": "50",
    }
    _klaxon("db", "upgrade", env=env)
    key = (
        _klaxon("apikey", "create", "--name", "e2e", "--scopes", "ingest,read,write", env=env)
        .stdout.strip()
        .splitlines()[-1]
    )
    s = System(f"http://127.0.0.1:{port}", key, env, db_url)
    s.start("api", "api", "--port", str(port))
    s.start("worker", "worker")
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{s.url}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
        time.sleep(0.1)
    yield s
    for p in s.procs.values():
        if p.poll() is None:
            p.terminate()
    for p in s.procs.values():
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait(predicate: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def test_alertmanager_payloads_over_http_become_alerts_within_a_second(system: System) -> None:
    with system.client() as c:
        r = c.post(
            "/api/v1/ingest/prometheus",
            content=(PAYLOADS / "alertmanager-04-firing-PeersDemoErrorRatio.json").read_bytes(),
        )
        assert r.status_code == 200, r.text
        seen: list[dict[str, object]] = []

        def visible() -> bool:
            seen[:] = c.get("/api/v1/alerts", params={"status": "open"}).json()["items"]
            return bool(seen)

        assert _wait(visible, 5.0) < 1.0
        alert_id = seen[0]["id"]
        assert seen[0]["title"] == "PeersDemoErrorRatio"

        r = c.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": "on it"})
        assert r.status_code == 200
        assert r.json()["status"] == "acknowledged"

        c.post(
            "/api/v1/ingest/prometheus",
            content=(PAYLOADS / "alertmanager-05-resolved-PeersDemoErrorRatio.json").read_bytes(),
        )
        _wait(lambda: c.get(f"/api/v1/alerts/{alert_id}").json()["status"] == "resolved", 5.0)
        actions = [h["action"] for h in c.get(f"/api/v1/alerts/{alert_id}/history").json()]
        assert actions == ["fired", "acknowledged", "resolved"]


def test_a_worker_killed_mid_load_loses_nothing_and_counts_nothing_twice(system: System) -> None:
    fingerprints = [f"fp{i}" for i in range(40)]
    sent: dict[str, int] = dict.fromkeys(fingerprints, 0)
    stop = threading.Event()
    errors: list[str] = []

    def send() -> None:
        n = 0
        with system.client() as c:
            while not stop.is_set():
                batch = []
                for j in range(20):
                    fp = fingerprints[(n + j) % len(fingerprints)]
                    batch.append(
                        {
                            "ts": datetime.now(UTC).isoformat(),
                            "kind": "alert",
                            "title": f"Load {fp}",
                            "fingerprint": fp,
                            "event_id": f"load-{n}-{j}",
                        }
                    )
                r = c.post("/api/v1/events", json=batch)
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                for item in batch:  # counted only once the API said they are durable
                    sent[item["fingerprint"]] += 1
                n += 20

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(2.0)
    system.procs["worker"].send_signal(signal.SIGKILL)
    system.procs["worker"].wait()
    time.sleep(1.0)
    system.start("worker", "worker")
    time.sleep(2.0)
    stop.set()
    sender.join()
    assert not errors, errors[:3]
    total = sum(sent.values())
    assert total > 500

    engine = sa.create_engine(system.db_url)

    def drained() -> bool:
        with engine.connect() as conn:
            return conn.execute(sa.text("select count(*) from inbox")).scalar_one() == 0

    _wait(drained, 60.0)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select count(*) from events")).scalar_one()
        rows = conn.execute(
            sa.text(
                "select fingerprint, count(*), sum(occurrences) from alerts group by fingerprint"
            )
        ).all()
    engine.dispose()
    assert stored == total
    by_fp = {fp: (n_alerts, occurrences) for fp, n_alerts, occurrences in rows}
    assert set(by_fp) == set(fingerprints)
    for fp in fingerprints:
        assert by_fp[fp] == (1, sent[fp]), (fp, by_fp[fp], sent[fp])
