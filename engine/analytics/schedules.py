"""Scheduled reports: a PDF of the last day or week, delivered through a channel.

Schedules live in the settings table (key "reports.schedules"), each
{"name", "every": "daily"|"weekly", "at": "HH:MM", "weekday": "mon", "tz", "channel",
"filters": {"team": [...], ...}, "last_run_at", "last_result"}.

`run_due_reports(db, now)` is what the worker's scheduler calls (every minute is plenty). A
schedule is due when its latest run instant (the last `at` in its time zone, on its weekday
for weekly ones) is after its last run; missed runs are not caught up, the latest one is run.
The run instant is claimed in a write transaction before the report is built, so two workers
never send the same report twice. The report covers the day (or week) before the run instant.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import schedule as schedule_lib
from sqlalchemy import Connection, insert, select, update

from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import DIMENSIONS, Filters
from engine.auth import audit
from engine.auth.principal import Principal
from engine.store.db import Database, orm
from engine.store.models import Channel, Setting

log = logging.getLogger("klaxon.reports")

SETTING_KEY = "reports.schedules"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _load(conn: Connection) -> list[dict[str, Any]]:
    row = orm(conn).scalars(select(Setting).where(Setting.key == SETTING_KEY)).one_or_none()
    value = row.value if row is not None else None
    return [dict(s) for s in value] if isinstance(value, list) else []


def _store(conn: Connection, schedules: list[dict[str, Any]], by: str) -> None:
    now = datetime.now(UTC)
    exists = conn.execute(select(Setting.key).where(Setting.key == SETTING_KEY)).first()
    if exists is None:
        conn.execute(
            insert(Setting).values(key=SETTING_KEY, value=schedules, updated_at=now, updated_by=by)
        )
    else:
        conn.execute(
            update(Setting)
            .where(Setting.key == SETTING_KEY)
            .values(value=schedules, updated_at=now, updated_by=by)
        )


def list_schedules(conn: Connection, actor: Principal) -> list[dict[str, Any]]:
    actor.require("analytics.read")
    return _load(conn)


def check_schedule(conn: Connection, spec: dict[str, Any]) -> dict[str, Any]:
    """A schedule as given by a person, checked; AnalyticsQueryError names the field."""
    name = str(spec.get("name") or "")
    if not _NAME.match(name):
        raise AnalyticsQueryError(
            "name", "name: lower-case letters, digits, '.', '_' or '-', up to 64"
        )
    every = spec.get("every", "daily")
    if every not in EVERY:
        raise AnalyticsQueryError("every", "every: daily or weekly")
    try:
        at = time.fromisoformat(str(spec.get("at", "08:00")))
    except ValueError:
        raise AnalyticsQueryError("at", "at: the time of day as HH:MM") from None
    weekday = str(spec.get("weekday", "mon")).lower()
    if every == "weekly" and weekday not in WEEKDAYS:
        raise AnalyticsQueryError("weekday", f"weekday: one of {', '.join(WEEKDAYS)}")
    tz = str(spec.get("tz") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise AnalyticsQueryError(
            "tz", f"tz: unknown time zone {tz!r}; use an IANA name like Europe/Berlin"
        ) from None
    channel = str(spec.get("channel") or "")
    if conn.execute(select(Channel.id).where(Channel.name == channel)).first() is None:
        raise AnalyticsQueryError("channel", f"channel: no channel named {channel!r}")
    filters = spec.get("filters") or {}
    if (
        not isinstance(filters, dict)
        or any(k not in DIMENSIONS for k in filters)
        or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in filters.values()
        )
    ):
        raise AnalyticsQueryError(
            "filters", f"filters: an object with any of {', '.join(DIMENSIONS)}"
        )
    Filters.of(end=datetime.now(UTC), **filters)  # the values are checked as the API checks them
    return {
        "name": name,
        "every": every,
        "at": at.strftime("%H:%M"),
        "weekday": weekday if every == "weekly" else None,
        "tz": tz,
        "channel": channel,
        "filters": {k: list(v) if isinstance(v, list) else [v] for k, v in filters.items()},
        "last_run_at": None,
        "last_result": None,
    }


def save_schedule(conn: Connection, actor: Principal, spec: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a schedule by name; audited."""
    actor.require("reports.write")
    checked = check_schedule(conn, spec)
    schedules = _load(conn)
    before = next((s for s in schedules if s["name"] == checked["name"]), None)
    if before is not None:
        checked["last_run_at"] = before.get("last_run_at")
    schedules = [s for s in schedules if s["name"] != checked["name"]] + [checked]
    _store(conn, schedules, actor.name)
    audit.record(
        conn,
        actor,
        "report.schedule.save",
        "report_schedule",
        checked["name"],
        before=before,
        after=checked,
    )
    return checked


def delete_schedule(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("reports.write")
    schedules = _load(conn)
    found = next((s for s in schedules if s["name"] == name), None)
    if found is None:
        raise AnalyticsQueryError("name", f"no report schedule named {name!r}")
    _store(conn, [s for s in schedules if s["name"] != name], actor.name)
    audit.record(conn, actor, "report.schedule.delete", "report_schedule", name, before=found)
    return found


def latest_run(schedule: dict[str, Any], now: datetime) -> datetime:
    """The schedule's latest run instant at or before `now` (UTC)."""
    zone = ZoneInfo(schedule["tz"])
    at = time.fromisoformat(schedule["at"])
    local = now.astimezone(zone)
    day = local.date()
    for back in range(8):
        candidate_day = day - timedelta(days=back)
        if (
            schedule["every"] == "weekly"
            and WEEKDAYS[candidate_day.weekday()] != schedule["weekday"]
        ):
            continue
        candidate = datetime.combine(candidate_day, at, tzinfo=zone).astimezone(UTC)
        if candidate <= now:
            return candidate
    raise AssertionError("a daily or weekly schedule always has a run within 8 days")


def _claim(db: Database, now: datetime) -> list[tuple[dict[str, Any], datetime]]:
    """Mark every due schedule as run at its instant, in one write transaction."""
    with db.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(Setting.key).where(Setting.key == SETTING_KEY).with_for_update())
        schedules = _load(conn)
        due = []
        for s in schedules:
            instant = latest_run(s, now)
            last = datetime.fromisoformat(s["last_run_at"]) if s.get("last_run_at") else None
            if last is None or last < instant:
                s["last_run_at"] = instant.isoformat()
                due.append((dict(s), instant))
        if due:
            _store(conn, schedules, "klaxon")
    return due


def run_due_reports(
    db: Database, now: datetime | None = None, *, data_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Build and send every due report; returns what happened to each."""
    from engine.analytics.report import build_report
    from engine.analytics.warehouse import warehouse
    from engine.config import settings

    now = now or datetime.now(UTC)
    folder = Path(data_dir) if data_dir else settings().data_dir
    results = []
    for schedule, instant in _claim(db, now):
        start = instant - EVERY[schedule["every"]]
        filters = Filters.of(start=start, end=instant, **schedule["filters"])
        title = f"Klaxon {schedule['every']} report: {schedule['name']}"
        result: dict[str, Any] = {
            "name": schedule["name"],
            "from": start.isoformat(),
            "to": instant.isoformat(),
        }
        try:
            pdf = build_report(db, warehouse(db, folder), filters, now=now, title=title)
            path = folder / "reports" / f"{schedule['name']}-{instant:%Y%m%dT%H%MZ}.pdf"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pdf)
            result |= {
                "file": str(path),
                "bytes": len(pdf),
                "sent": _send(db, schedule["channel"], title, filters, path),
            }
        except Exception as err:  # one failing report must not stop the others
            log.exception("report %s failed", schedule["name"])
            result |= {"sent": False, "error": str(err)}
        _record(db, schedule["name"], result)
        results.append(result)
    return results


def _send(db: Database, channel: str, title: str, filters: Filters, path: Path) -> bool:
    from engine.notify.deliver import send_message

    span = f"{filters.start:%Y-%m-%d %H:%M} to {filters.end:%Y-%m-%d %H:%M} UTC"
    body = f"The report for {span} is attached."
    return send_message(db, channel, title, body, attachments=[path])


def _record(db: Database, name: str, result: dict[str, Any]) -> None:
    with db.connect() as conn:
        schedules = _load(conn)
        for s in schedules:
            if s["name"] == name:
                s["last_result"] = {k: v for k, v in result.items() if k != "name"}
        _store(conn, schedules, "klaxon")


def start_report_loop(
    db: Database, stop: threading.Event, *, data_dir: Path | None = None, every_s: int = 60
) -> threading.Thread:
    """Run `run_due_reports` every `every_s` seconds in a thread until `stop` (`klaxon worker`).

    STACK.md: an exception escaping `run_pending` would end the loop, so the job is wrapped;
    the run instants live in the store, so a restart neither loses nor repeats a report.
    """
    sched = schedule_lib.Scheduler()

    def job() -> None:
        try:
            for result in run_due_reports(db, data_dir=data_dir):
                log.info("report %s sent=%s", result["name"], result.get("sent"))
        except Exception:
            log.exception("scheduled reports failed; they are tried again in %s s", every_s)

    sched.every(every_s).seconds.do(job)

    def loop() -> None:
        job()  # a report due while the worker was down goes out at start
        while not stop.wait(1.0):
            sched.run_pending()

    thread = threading.Thread(target=loop, name="klaxon-reports", daemon=True)
    thread.start()
    return thread
