"""`klaxon worker` as a real process: it queues the notifications of a batch's transitions and
its scheduler thread delivers them, retrying a receiver that was down until it is back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
RULES = 'rule source "{{ title }}"\n  when kind == "alert"\n  team platform\n  notify hook\nend\n'


@pytest.fixture
def worker(db_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    rules = tmp_path / "worker-rules.klx"
    rules.write_text(RULES, encoding="utf-8")
    env = {
        **os.environ,  # KLAXON_SECRET_KEY and KLAXON_DATA_DIR as the tests' own
        "KLAXON_DATABASE_URL": db_url,
        "KLAXON_RULES_FILE": str(rules),
        "KLAXON_BATCH_WAIT_MS": "50",
        "KLAXON_RETRY_BASE_S": "1",
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_the_worker_process_notifies_retries_and_resolves(api, http, worker, wait) -> None:
    r = api.post(
        "/api/v1/channels",
        json={"name": "hook", "url": http.url(), "grouping": {"interval_s": 0}},
    )
    assert r.status_code == 201, r.text

    def post(title: str, status: str = "firing") -> None:
        event = {"kind": "alert", "title": title, "severity": "critical", "status": status}
        assert api.post("/api/v1/events", json=[event]).status_code in (200, 202)

    def titles() -> list[str]:
        return [r.json["title"] for r in http.received]

    post("Disk full")
    assert wait(lambda: titles() == ["FIRING [CRITICAL] Disk full"], timeout=60), titles()
    http.stop()  # the receiver goes down; the next message fails, then is retried
    post("Disk full", status="resolved")

    def failed_once() -> bool:
        rows = api.get("/api/v1/notifications", params={"transition": "resolved"}).json()
        return bool(rows["items"]) and rows["items"][0]["attempts"] >= 1

    assert wait(failed_once, timeout=60)
    assert worker.poll() is None
    http.start()
    assert wait(lambda: len(titles()) == 2, timeout=60), titles()
    assert titles() == ["FIRING [CRITICAL] Disk full", "RESOLVED [CRITICAL] Disk full"]

    def states() -> list[tuple[str, str]]:
        rows = api.get("/api/v1/notifications").json()["items"]
        return [(n["transition"], n["status"]) for n in rows]

    # The receiver has the message a moment before the worker records the attempt.
    assert wait(lambda: states() == [("resolved", "sent"), ("fired", "sent")], timeout=30)
    rows = api.get("/api/v1/notifications").json()["items"]
    detail = api.get(f"/api/v1/notifications/{rows[0]['id']}").json()
    assert detail["attempt_log"][0]["ok"] is False
    assert detail["attempt_log"][-1]["ok"] is True
