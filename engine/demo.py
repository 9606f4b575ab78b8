"""Demo history: 30 days of realistic events run through the real engine into the store.

`klaxon demo load` (and `klaxon up --demo` on an empty store) generates events from several
tools and raw signals, runs them through the demo rules (engine/rules/demo.klx) exactly as the
worker would, stores the alerts, and then plays the people: acknowledgements with realistic
delays, investigations, hand resolutions (some false positives), assignments, notes and the
notifications that went out. Seeded, so every load of the same length looks the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, func, insert, select, update

from engine.pipeline.engine import Engine, compile_for_engine
from engine.schema import events_from_dicts, identity_hash
from engine.store import rules as rules_store
from engine.store.db import Database
from engine.store.events import insert_events, purge_processed
from engine.store.models import (
    Alert,
    AlertHistory,
    EngineStateRow,
    InboxItem,
    Notification,
    Team,
    TeamMember,
    User,
)
from engine.store.transitions import apply_transitions

DEMO_RULES = Path(__file__).parent / "rules" / "demo.klx"

TEAMS: dict[str, list[str]] = {
    "platform": ["api", "gateway", "auth", "k8s"],
    "payments": ["checkout", "payments", "ledger"],
    "data": ["etl", "warehouse", "kafka"],
    "web": ["frontend", "cdn", "search"],
}
PEOPLE: dict[str, list[str]] = {
    "platform": ["ana@example.com", "bruno@example.com", "chen@example.com"],
    "payments": ["dara@example.com", "eli@example.com"],
    "data": ["farah@example.com", "gus@example.com"],
    "web": ["hana@example.com", "ivo@example.com"],
}
# (title, severity, share of episodes, median minutes until the tool resolves it)
CATALOG = [
    ("HighErrorRate", "critical", 0.08, 12),
    ("HighLatency", "high", 0.16, 18),
    ("PodCrashLooping", "high", 0.10, 25),
    ("DiskSpaceLow", "medium", 0.12, 90),
    ("HighMemoryUsage", "medium", 0.18, 35),
    ("CertificateExpiringSoon", "low", 0.05, 600),
    ("CPUThrottling", "low", 0.16, 20),
    ("BackupCompleted", "info", 0.05, 5),
    ("ReplicationLag", "high", 0.10, 30),
]
SOURCES = ["prometheus", "prometheus", "grafana", "datadog", "cloudwatch", "newrelic"]
FLAPPY = [("kafka", "ReplicationLag"), ("cdn", "HighLatency"), ("auth", "CPUThrottling")]
CHANNELS = {
    "platform": "platform_chat",
    "payments": "payments_chat",
    "data": "data_chat",
    "web": "web_chat",
}


def _team_of(service: str) -> str:
    return next(t for t, services in TEAMS.items() if service in services)


@dataclass
class DemoSummary:
    events: int
    alerts: int
    incidents: int
    days: int

    def __str__(self) -> str:
        return f"{self.days} days of history: {self.events:,} events, {self.alerts:,} alerts, {self.incidents} incidents"


class _Gen:
    def __init__(self, start: datetime, end: datetime, seed: int) -> None:
        self.start, self.end = start, end
        self.rnd = random.Random(seed)
        self.events: list[dict[str, Any]] = []

    def when(self, day: datetime) -> datetime:
        """A moment in the day, busier in working hours (UTC+1-ish)."""
        hour = self.rnd.choices(
            range(24),
            weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 8, 7, 8, 9, 9, 8, 6, 4, 3, 2, 2, 1, 1],
        )[0]
        return day + timedelta(hours=hour, minutes=self.rnd.random() * 60)

    def alert_episode(
        self, service: str, title: str, severity: str, at: datetime, minutes: float, host: str
    ) -> None:
        source = self.rnd.choice(SOURCES)
        env = "prod" if self.rnd.random() < 0.85 else "staging"
        base = {
            "kind": "alert",
            "source": source,
            "title": title,
            "severity": severity,
            "service": service,
            "environment": env,
            "host": host,
            "fingerprint": identity_hash(source, service, title, host, env),
            "description": f"{title} on {service} ({host})",
            "labels": {
                "team": _team_of(service),
                "region": self.rnd.choice(["eu-west-1", "us-east-1"]),
            },
        }
        end = at + timedelta(minutes=minutes)
        self.events.append(
            {**base, "ts": at, "status": "firing", "value": round(self.rnd.uniform(1, 100), 2)}
        )
        # Tools re-send a firing alert while it lasts (Alertmanager's repeat interval).
        resend = at + timedelta(minutes=30)
        while resend < min(end, self.end):
            self.events.append(
                {
                    **base,
                    "ts": resend,
                    "status": "firing",
                    "value": round(self.rnd.uniform(1, 100), 2),
                }
            )
            resend += timedelta(minutes=30)
        # A few are never resolved by the tool: people close them.
        if end < self.end and self.rnd.random() < 0.9:
            self.events.append({**base, "ts": end, "status": "resolved"})

    def generate(self) -> list[dict[str, Any]]:
        days = (self.end - self.start).days
        for d in range(days):
            day = self.start + timedelta(days=d)
            for service in [s for services in TEAMS.values() for s in services]:
                for _ in range(self.rnd.choices([0, 1, 2, 3, 4], weights=[3, 4, 3, 2, 1])[0]):
                    title, severity, _, median = self.rnd.choices(
                        CATALOG, weights=[c[2] for c in CATALOG]
                    )[0]
                    minutes = max(1.0, self.rnd.lognormvariate(0, 0.8) * median)
                    self.alert_episode(
                        service,
                        title,
                        severity,
                        self.when(day),
                        minutes,
                        f"{service}-{self.rnd.randint(1, 4)}",
                    )
            for service, title in FLAPPY:  # flapping: fires and clears again and again
                if self.rnd.random() < 0.5:
                    at = self.when(day)
                    for _ in range(self.rnd.randint(4, 8)):
                        self.alert_episode(
                            service, title, "high", at, self.rnd.uniform(2, 6), f"{service}-1"
                        )
                        at += timedelta(minutes=self.rnd.uniform(5, 12))
            if self.rnd.random() < 0.25:  # an incident: a service goes down hard
                service = self.rnd.choice([s for services in TEAMS.values() for s in services])
                at = self.when(day)
                for title in ("HighErrorRate", "HighLatency", "PodCrashLooping"):
                    self.alert_episode(
                        service,
                        title,
                        "critical",
                        at + timedelta(minutes=self.rnd.uniform(0, 6)),
                        self.rnd.uniform(15, 60),
                        f"{service}-1",
                    )
            if self.rnd.random() < 0.2:  # a brute-force attempt
                at, ip = self.when(day), f"203.0.113.{self.rnd.randint(2, 250)}"
                for i in range(self.rnd.randint(25, 60)):
                    self.events.append(
                        {
                            "kind": "event",
                            "source": "webhook",
                            "title": "auth.failed",
                            "service": "auth",
                            "ts": at + timedelta(seconds=5 * i),
                            "labels": {"client_ip": ip},
                        }
                    )
            for hour in range(0, 24, 6):  # checkout latency samples, with a bad hour now and then
                slow = self.rnd.random() < 0.04
                for m in range(0, 60, 3):
                    latency = self.rnd.uniform(900, 2500) if slow else self.rnd.uniform(80, 400)
                    self.events.append(
                        {
                            "kind": "event",
                            "source": "webhook",
                            "title": "http.request",
                            "service": "checkout",
                            "ts": day + timedelta(hours=hour, minutes=m),
                            "labels": {"latency_ms": f"{latency:.0f}"},
                        }
                    )
            for host in ("worker-1", "worker-2"):  # heartbeats, with an outage on some days
                gap = self.rnd.random() < 0.08
                gap_at = self.rnd.randint(0, 23)
                for hour in range(24):
                    if gap and hour in (gap_at, (gap_at + 1) % 24):
                        continue
                    for m in (0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55):
                        self.events.append(
                            {
                                "kind": "event",
                                "source": "webhook",
                                "title": "heartbeat",
                                "host": host,
                                "service": "etl",
                                "ts": day + timedelta(hours=hour, minutes=m),
                            }
                        )
            if self.rnd.random() < 0.3:
                service = self.rnd.choice(["api", "checkout", "search"])
                error = self.rnd.choice(
                    ["TimeoutError", "KeyError", "ConnectionReset", "NullPointer", "OOMKilled"]
                )
                self.events.append(
                    {
                        "kind": "event",
                        "source": "webhook",
                        "title": "app.exception",
                        "service": service,
                        "ts": self.when(day),
                        "labels": {"error": error},
                    }
                )
        self.events = [e for e in self.events if e["ts"] < self.end]
        self.events.sort(key=lambda e: e["ts"])
        for i, e in enumerate(self.events):
            e["event_id"] = f"demo:{i}"
            e["ts"] = e["ts"].isoformat()
        return self.events


def load_demo(
    db: Database,
    *,
    days: int = 30,
    now: datetime | None = None,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Generate and store `days` of history ending at `now`; the store should be empty."""
    say = progress or (lambda _m: None)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    say("generating events")
    events = events_from_dicts(_Gen(start, now, seed).generate(), received_at=now)
    say(f"storing {events.height:,} events")
    with db.connect() as conn:
        _teams(conn)
        for i in range(0, events.height, 20_000):
            insert_events(conn, events.slice(i, 20_000))
        # These events are history: the demo runs them through the engine itself, below.
        ids = conn.execute(select(InboxItem.id)).scalars().all()
        purge_processed(conn, list(ids))
        rules_store.save(
            conn, DEMO_RULES.read_text(encoding="utf-8"), actor="demo", comment="demo rules"
        )
    say("running the rules over them")
    text = DEMO_RULES.read_text(encoding="utf-8")
    engine = Engine(compile_for_engine(text, "demo.klx"))
    outs = [engine.feed(events.slice(i, 50_000)) for i in range(0, events.height, 50_000)]
    outs.append(engine.advance(now))
    transitions = pl.concat(outs)
    say(f"storing {transitions.height:,} alert transitions")
    with db.connect() as conn:
        for i in range(0, transitions.height, 5_000):
            apply_transitions(conn, transitions.slice(i, 5_000))
        conn.execute(
            insert(EngineStateRow).values(
                shard=0, state=engine.state.to_bytes(), batches=1, rules_version=1, saved_at=now
            )
        )
    say("playing the people: acknowledgements, resolutions, notes, notifications")
    with db.connect() as conn:
        _people(conn, random.Random(seed + 1), now)
        n_alerts = conn.execute(select(func.count()).select_from(Alert)).scalar_one()
        from engine.store.models import Incident

        n_incidents = conn.execute(select(func.count()).select_from(Incident)).scalar_one()
    return DemoSummary(events.height, int(n_alerts), int(n_incidents), days)


def _teams(conn: Connection) -> None:
    for team, _services in TEAMS.items():
        exists = conn.execute(select(Team.id).where(Team.name == team)).scalar_one_or_none()
        if exists is None:
            team_id = conn.execute(
                insert(Team)
                .values(
                    name=team,
                    default_channels=[CHANNELS[team]],
                    fallback_channel="pager",
                    escalation_policy=f"{team}_default",
                )
                .returning(Team.id)
            ).scalar_one()
        else:
            team_id = exists
        for email in PEOPLE[team]:
            user_id = conn.execute(select(User.id).where(User.email == email)).scalar_one_or_none()
            if user_id is None:
                user_id = conn.execute(
                    insert(User)
                    .values(
                        email=email,
                        name=email.split("@")[0].title(),
                        role="operator",
                        tz="Europe/Berlin",
                    )
                    .returning(User.id)
                ).scalar_one()
            member = conn.execute(
                select(TeamMember).where(
                    TeamMember.team_id == team_id, TeamMember.user_id == user_id
                )
            ).first()
            if member is None:
                conn.execute(insert(TeamMember).values(team_id=team_id, user_id=user_id))


_ACK_CHANCE = {"critical": 0.95, "high": 0.85, "medium": 0.6, "low": 0.3, "info": 0.1}
_ACK_MEDIAN_MIN = {"critical": 4, "high": 11, "medium": 35, "low": 120, "info": 240}
_NOISY_RULES_FP = {"CPUThrottling": 0.45, "HighMemoryUsage": 0.25, "BackupCompleted": 0.6}


def _people(conn: Connection, rnd: random.Random, now: datetime) -> None:
    """Acknowledge, investigate, assign, note and resolve as people would; log notifications."""
    rows = conn.execute(
        select(
            Alert.id,
            Alert.created_at,
            Alert.severity,
            Alert.team,
            Alert.resolved_at,
            Alert.is_open,
            Alert.title,
            Alert.status,
            Alert.notify,
            Alert.muted_by,
        )
    ).all()
    updates: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for (
        alert_id,
        created,
        severity,
        team,
        resolved_at,
        is_open,
        title,
        status,
        notify,
        muted,
    ) in rows:
        team = team or "platform"
        person = rnd.choice(PEOPLE.get(team, PEOPLE["platform"]))
        night = created.hour < 7 or created.hour >= 20
        values: dict[str, Any] = {
            "b_id": alert_id,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "investigating_at": None,
            "assignee": None,
            "status": status,
            "is_open": is_open,
            "resolved_at": resolved_at,
            "resolved_by": "klaxon" if resolved_at else None,
            "resolution": "auto" if resolved_at else None,
            "escalation_level": 0,
        }
        if not muted:
            for target in notify or []:
                failed = rnd.random() < 0.05
                dead = failed and rnd.random() < 0.3
                notifications.append(
                    {
                        "alert_id": alert_id,
                        "transition": "fired",
                        "target": target,
                        "channel": target,
                        "status": "dead" if dead else "sent",
                        "attempts": 5 if dead else (2 if failed else 1),
                        "last_error": "HTTP 503 from receiver" if failed else None,
                        "group_key": f"{team}:{title}",
                        "subject": title,
                        "body": title,
                        "payload": {},
                        "created_at": created,
                        "sent_at": None
                        if dead
                        else created
                        + timedelta(seconds=rnd.uniform(0.2, 3) + (30 if failed else 0)),
                        "next_attempt_at": None,
                    }
                )
        ack_delay = timedelta(
            minutes=rnd.lognormvariate(0, 0.7) * _ACK_MEDIAN_MIN[severity] * (2.2 if night else 1)
        )
        acked = not muted and rnd.random() < _ACK_CHANCE[severity] and created + ack_delay < now
        if acked and (resolved_at is None or created + ack_delay < resolved_at):
            values.update(
                acknowledged_at=created + ack_delay,
                acknowledged_by=person,
                status="acknowledged" if is_open else status,
            )
            history.append(
                _h(alert_id, created + ack_delay, "acknowledged", person, "active", "acknowledged")
            )
            if rnd.random() < 0.5:
                values["assignee"] = person
                history.append(
                    _h(
                        alert_id,
                        created + ack_delay + timedelta(seconds=20),
                        "assigned",
                        person,
                        "acknowledged",
                        "acknowledged",
                        None,
                        {"assignee": person},
                    )
                )
            if rnd.random() < 0.3:
                at = created + ack_delay + timedelta(minutes=rnd.uniform(1, 10))
                if at < now and (resolved_at is None or at < resolved_at):
                    values.update(
                        investigating_at=at, status="investigating" if is_open else status
                    )
                    history.append(
                        _h(alert_id, at, "investigating", person, "acknowledged", "investigating")
                    )
            if rnd.random() < 0.15:
                history.append(
                    _h(
                        alert_id,
                        created + ack_delay + timedelta(minutes=2),
                        "note",
                        person,
                        None,
                        None,
                        rnd.choice(
                            [
                                "Looking at the dashboards",
                                "Rolled back the last deploy",
                                "Known issue, upstream ticket open",
                                "Scaling out",
                            ]
                        ),
                    )
                )
        elif not muted and severity in ("critical", "high") and rnd.random() < 0.5:
            values["escalation_level"] = 1
        fp_chance = _NOISY_RULES_FP.get(title, 0.08)
        if is_open and created < now - timedelta(hours=rnd.uniform(4, 72)):
            # Still open long after: someone closes it by hand.
            at = max(
                created + timedelta(minutes=rnd.uniform(30, 240)),
                values["acknowledged_at"] or created,
            )
            reason = (
                "false_positive"
                if rnd.random() < fp_chance
                else rnd.choice(["fixed", "fixed", "fixed", "duplicate", "wont_fix"])
            )
            values.update(
                status="resolved",
                is_open=False,
                resolved_at=at,
                resolved_by=person,
                resolution=reason,
            )
            history.append(
                _h(
                    alert_id,
                    at,
                    "resolved",
                    person,
                    values.get("status"),
                    "resolved",
                    None,
                    {"reason": reason},
                )
            )
        elif acked and resolved_at is not None and rnd.random() < fp_chance:
            values.update(resolved_by=person, resolution="false_positive")
        updates.append(values)
    if updates:
        from sqlalchemy import bindparam

        conn.execute(
            update(Alert)
            .where(Alert.id == bindparam("b_id"))
            .values(
                acknowledged_at=bindparam("acknowledged_at"),
                acknowledged_by=bindparam("acknowledged_by"),
                investigating_at=bindparam("investigating_at"),
                assignee=bindparam("assignee"),
                status=bindparam("status"),
                is_open=bindparam("is_open"),
                resolved_at=bindparam("resolved_at"),
                resolved_by=bindparam("resolved_by"),
                resolution=bindparam("resolution"),
                escalation_level=bindparam("escalation_level"),
            )
            .execution_options(synchronize_session=False),
            updates,
        )
    for i in range(0, len(history), 5000):
        conn.execute(insert(AlertHistory), history[i : i + 5000])
    for i in range(0, len(notifications), 5000):
        conn.execute(insert(Notification), notifications[i : i + 5000])


def _h(
    alert_id: int,
    at: datetime,
    action: str,
    actor: str,
    before: str | None,
    after: str | None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at": at,
        "action": action,
        "actor": actor,
        "from_status": before,
        "to_status": after,
        "note": note,
        "details": details or {},
    }


def store_is_empty(db: Database) -> bool:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(Alert)).scalar_one() == 0
