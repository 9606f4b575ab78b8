"""The worker hook: a batch's fired and resolved alerts become notification rows.

It runs inside the batch's transaction (so a batch that rolls back notifies nobody) and only
writes rows; the scheduler thread delivers them after the commit. Repeats never notify, muted
alerts never notify, and a resolution goes to every channel that got (or is still getting)
the firing message.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Connection, Row, event, insert, select, update

from engine.config import Settings
from engine.notify.clock import Clock, wall_clock
from engine.notify.planner import FIRING, PLANNING_COLUMNS, Planner, alert_snapshot
from engine.notify.policies import ladder_for
from engine.notify.targets import Delivery
from engine.store.models import Alert, Escalation, Notification
from engine.store.transitions import Applied, Routing

# Set after a batch that queued notifications commits: the scheduler thread delivers at once.
DELIVERY_WAKE = threading.Event()


def _resolved_muted(frame: pl.DataFrame) -> dict[tuple[str, str, datetime], list[str]]:
    if frame.height == 0 or "muted_by" not in frame.columns:
        return {}
    rows = frame.filter(pl.col("transition") == "resolved").select("rule", "key", "at", "muted_by")
    return {(r[0], r[1], r[2]): list(r[3] or []) for r in rows.iter_rows()}


def _alerts(conn: Connection, ids: list[int]) -> dict[int, Row[Any]]:
    """The columns planning needs of each alert, by id (rows, not ORM objects)."""
    found: dict[int, Row[Any]] = {}
    for i in range(0, len(ids), 500):
        for a in conn.execute(select(*PLANNING_COLUMNS).where(Alert.id.in_(ids[i : i + 500]))):
            found[a.id] = a
    return found


def _some(column: str) -> pl.Expr:
    """A list column holds something (null holds nothing)."""
    return pl.col(column).list.len().fill_null(0) > 0


def enqueue_batch(
    conn: Connection, applied: Applied, frame: pl.DataFrame, *, now: datetime, settings: Settings
) -> int:
    """Rows for the batch's transitions; returns how many were written."""
    changes = applied.transitions
    if changes.height == 0:
        return 0
    # The batch knows how it routed the alerts it fired: those nobody hears of (muted, or
    # without a target, team or escalation) are passed over column-wise, and an alert's row
    # is read only for a message's snapshot.
    resolves = pl.col("transition") == "resolved"
    unrouted = ~pl.col("routed")
    targeted = _some("notify") | pl.col("team").is_not_null()
    heard = ~_some("muted_by") & (targeted | _some("escalate"))
    acting = changes.filter(resolves | unrouted | heard)
    needed = acting.filter(resolves | unrouted | targeted)["alert_id"].unique().sort()
    alerts = _alerts(conn, needed.to_list())
    muted = _resolved_muted(frame)
    planner = Planner(conn, settings, now)
    rows: list[dict[str, Any]] = []
    escalations: list[dict[str, Any]] = []
    resolved: list[Row[Any]] = []
    for t in acting.iter_rows(named=True):
        alert = alerts.get(t["alert_id"])
        if t["transition"] == "resolved":
            if alert is not None and not muted.get((t["rule"], t["key"], t["at"])):
                resolved.append(alert)
            continue
        routing = (
            Routing(
                t["alert_id"],
                t["team"],
                t["notify"] or [],
                t["escalate"] or [],
                t["muted_by"] or [],
            )
            if t["routed"]
            else alert
        )
        if routing is None or routing.muted_by:
            continue  # DSL.md §5: stored, but neither notified nor escalated
        targets = _targets(routing)
        if targets and alert is not None:
            rows += planner.for_targets(alert_snapshot(alert), "fired", targets)
        ladder = ladder_for(routing, planner.directory)
        if ladder:
            escalations.append(_escalation(t["alert_id"], ladder, now))
    planner.insert(rows)  # firing rows first: a resolution in the same batch follows them
    written = len(rows) + _enqueue_resolved(conn, planner, resolved)
    if escalations:
        conn.execute(insert(Escalation), escalations)
    return written


def _targets(alert: Routing | Row[Any]) -> list[str]:
    """Where a fired alert's message goes: its routes' `notify`, else its team."""
    return [str(x) for x in alert.notify or []] or ([f"team:{alert.team}"] if alert.team else [])


def _escalation(alert_id: int, ladder: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "ladder": ladder,
        "level": 0,
        "status": "active",
        "started_at": now,
        "next_at": now + timedelta(seconds=float(ladder[0]["delay_s"])),
        "updated_at": now,
    }


def _enqueue_resolved(conn: Connection, planner: Planner, resolved: list[Row[Any]]) -> int:
    """One resolution per channel that had a firing message; stop the alerts' escalations."""
    if not resolved:
        return 0
    ids = [a.id for a in resolved]
    conn.execute(
        update(Escalation)
        .where(Escalation.alert_id.in_(ids), Escalation.status == "active")
        .values(status="stopped", next_at=None, updated_at=planner.now)
    )
    firing = conn.execute(
        select(
            Notification.id,
            Notification.alert_id,
            Notification.target,
            Notification.channel,
            Notification.status,
            Notification.payload,
        )
        .where(Notification.alert_id.in_(ids), Notification.transition.in_(FIRING))
        .order_by(Notification.id)
    ).all()
    by_alert: dict[int, dict[str, Row[Any]]] = {}
    for n in firing:
        if n.channel:
            by_alert.setdefault(n.alert_id or 0, {})
            best = by_alert[n.alert_id or 0].get(n.channel)
            if best is None or best.status != "sent":  # a delivered one is the reference
                by_alert[n.alert_id or 0][n.channel] = n
    rows: list[dict[str, Any]] = []
    for alert in resolved:
        snapshot = alert_snapshot(alert)
        for channel, sibling in by_alert.get(alert.id, {}).items():
            if sibling.status in ("dead", "suppressed"):
                continue
            if sibling.status == "held":
                # Resolved during quiet hours: neither message is worth waking anyone for.
                conn.execute(
                    update(Notification)
                    .where(Notification.id == sibling.id, Notification.status == "held")
                    .values(status="suppressed", last_error="resolved during quiet hours")
                )
                continue
            p = sibling.payload or {}
            delivery = Delivery(
                sibling.target,
                channel,
                quiet=p.get("quiet") or {},
                tz=p.get("tz") or "UTC",
                user=p.get("user"),
            )
            rows.append(planner.row(snapshot, "resolved", delivery, of=sibling.id))
    planner.insert(rows)
    return len(rows)


class NotifyHook:
    """Registered in engine/hooks.py: `hook(conn, applied, transitions)` in each batch."""

    def __init__(self, settings: Settings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or Settings.load()
        self.clock = clock or wall_clock

    def __call__(self, conn: Connection, applied: Applied, transitions: pl.DataFrame) -> None:
        if enqueue_batch(conn, applied, transitions, now=self.clock(), settings=self.settings):
            event.listen(conn, "commit", _wake, once=True)


def _wake(_conn: Connection) -> None:
    DELIVERY_WAKE.set()
