"""The worker's scheduler thread, and timers that survive a crash or a restart."""

from __future__ import annotations

import threading
from dataclasses import replace

from engine.notify.deliver import Deliverer
from engine.notify.enqueue import NotifyHook
from engine.scheduler import NotifyScheduler
from engine.worker import Worker

RULES = 'rule source "{{ title }}"\n  when kind == "alert"\n  team platform\n  notify hook\nend\n'


def test_the_scheduler_thread_delivers_right_after_a_batch_commits(
    api, db, settings, http, tmp_path, wait
) -> None:
    rules = tmp_path / "rules.klx"
    rules.write_text(RULES, encoding="utf-8")
    s = replace(settings, rules_file=str(rules))
    api.post("/api/v1/channels", json={"name": "hook", "url": http.url()})
    worker = Worker(db, s, hooks=[NotifyHook(s)])  # the wall clock, as in production
    stop = threading.Event()
    sched = NotifyScheduler(db, s)
    for job in sched.scheduler.jobs:
        job.next_run = job.next_run.replace(year=2100)  # no periodic run: only the wake can send
    thread = sched.start(stop)
    try:
        api.post(
            "/api/v1/events", json=[{"kind": "alert", "title": "Disk full", "severity": "critical"}]
        )
        while worker.step():
            pass
        assert wait(lambda: len(http.received) == 1, timeout=10)  # woken by the commit
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_failing_job_is_logged_and_the_loop_goes_on(db, settings, caplog, wait) -> None:
    sched = NotifyScheduler(db, settings)

    def broken() -> None:
        raise RuntimeError("the store went away")

    assert sched._job("deliver", broken) is None
    assert sched.failures == 1
    assert "scheduler job deliver failed" in caplog.text
    stop = threading.Event()
    sched.scheduler.every(1).seconds.do(sched._job, "broken", broken)
    for job in sched.scheduler.jobs:
        job.next_run = job.next_run.replace(year=2000)  # all due at once
    thread = sched.start(stop)
    assert wait(lambda: sched.failures >= 2, timeout=10)
    assert thread.is_alive()
    stop.set()
    thread.join(5)


def test_rows_claimed_by_a_worker_that_died_are_sent_once_its_lease_ends(
    make_pipeline, http
) -> None:
    p = make_pipeline(RULES)
    p.add_channel("hook", http.url())
    p.fire("Disk full")
    # A worker claims the row and dies before sending: the row is `sending` under its lease.
    with p.db.connect() as conn:
        from engine.notify.deliver import Round

        claimed = p.deliverer._claim(conn, p.clock(), 10, Round())
    assert len(claimed) == 1
    assert p.notifications()[0]["status"] == "sending"
    fresh = Deliverer(p.db, p.settings, p.clock)  # another worker, after a restart
    try:
        assert fresh.deliver_due().claimed == 0
        p.clock.advance(minutes=2)
        assert fresh.deliver_due().sent == 1
    finally:
        fresh.close()
    assert len(http.received) == 1


def test_group_timers_and_retries_survive_a_restart(make_pipeline, http) -> None:
    p = make_pipeline(RULES)
    p.add_channel("hook", http.url())
    p.fire("first")
    p.deliver()
    p.clock.advance(seconds=10)
    p.fire("second")  # waits for the group interval
    http.stop()
    q = make_pipeline(RULES)  # a new process: only the store remembers
    q.clock.advance(seconds=50)
    assert q.deliver().failed == 1
    http.start()
    q.clock.advance(seconds=10)
    assert q.deliver().sent == 1
    assert [r.json["title"] for r in http.received] == [
        "FIRING [HIGH] first",
        "FIRING [HIGH] second",
    ]
