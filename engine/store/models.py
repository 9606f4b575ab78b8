"""The store's tables (DESIGN.md §5) as SQLAlchemy 2 models; Alembic migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: Json,
        list[Any]: Json,
        datetime: UTCDateTime,
    }


# ---------------------------------------------------------------- events and the inbox


class Event(Base):
    """Every accepted event, as normalized; durable before the API answers 2xx."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200))
    ts: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(256), default="")
    fingerprint: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    service: Mapped[str] = mapped_column(String(256), default="")
    environment: Mapped[str] = mapped_column(String(128), default="")
    host: Mapped[str] = mapped_column(String(256), default="")
    value: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    raw: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("event_id", name="uq_events_event_id"),)


class InboxItem(Base):
    """The SQL inbox queue: events accepted but not yet processed by a worker."""

    __tablename__ = "inbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_pk: Mapped[int] = mapped_column(BigInteger)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EngineStateRow(Base):
    """The worker's engine state as of its last checkpoint, and the rules it ran with.

    Steps since then are in `engine_journal`; the checkpoint and the journal's truncation
    commit together, so state plus journal always describe every batch stored.
    """

    __tablename__ = "engine_state"
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    rules_version: Mapped[int] = mapped_column(Integer, default=0)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The composed rules text (rules and API silences) the state was computed with, and its
    # identity: the journal is replayed with exactly these rules. NULL in states saved before
    # the journal existed (and by the demo): those load with the current rules.
    rules_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    rules_identity: Mapped[str | None] = mapped_column(String(200), nullable=True)


class EngineJournalRow(Base):
    """One worker step since the last checkpoint, written in the step's own transaction: what
    a restarted worker feeds its engine again (results discarded) to rebuild its state.

    `event_pks` are the batch's events in the order fed (`events.id`, int64 little-endian);
    `advances` the clock ticks of the steps before it that stored nothing (µs, int64 LE);
    `until_us` the clock of the step itself.
    """

    __tablename__ = "engine_journal"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shard: Mapped[int] = mapped_column(Integer, default=0)
    until_us: Mapped[int] = mapped_column(BigInteger)
    advances: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    event_pks: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


# ---------------------------------------------------------------- alerts and incidents

ALERT_STATUSES = ("active", "acknowledged", "investigating", "resolved", "suppressed")


class Alert(Base):
    """One alert: a (rule, key) from the moment it fires until it is resolved."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(128), index=True)
    key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(128), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(8), index=True)
    status: Mapped[str] = mapped_column(String(16))  # searched by ix_alerts_status_created
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(64), default="", index=True)
    service: Mapped[str] = mapped_column(String(256), default="", index=True)
    environment: Mapped[str] = mapped_column(String(128), default="")
    host: Mapped[str] = mapped_column(String(256), default="")
    team: Mapped[str | None] = mapped_column(String(128), index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    event_labels: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    value: Mapped[float | None] = mapped_column(Float)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    source_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(256))
    investigating_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(256))
    resolution: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(256))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notify: Mapped[list[Any]] = mapped_column(Json, default=list)
    escalate: Mapped[list[Any]] = mapped_column(Json, default=list)
    muted_by: Mapped[list[Any]] = mapped_column(Json, default=list)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    last_event_id: Mapped[str | None] = mapped_column(String(200))
    # Indexed (migration 0002_analytics): the analytics snapshot refreshes from changed alerts.
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, index=True
    )
    __table_args__ = (
        # At most one open alert per (rule, key): the engine's identity of an alert.
        Index(
            "uq_alerts_open_rule_key",
            "rule",
            "key",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
        Index("ix_alerts_status_created", "status", "created_at"),
    )


class AlertHistory(Base):
    """Every change of an alert and every note, with who and when."""

    __tablename__ = "alert_history"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(256))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class Incident(Base):
    """Alerts a `correlate` block grouped: equal `by` values within `within`."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    correlate: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    severity: Mapped[str] = mapped_column(String(8), default="info")
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (
        UniqueConstraint("correlate", "key", "opened_at", name="uq_incidents_identity"),
    )


# ---------------------------------------------------------------- rules and silences


class RuleVersion(Base):
    """Every version of the rules file; the highest is current."""

    __tablename__ = "rules"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Silence(Base):
    """A silence made through the API or UI; the worker adds it to the rules as a `silence` block."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    matcher: Mapped[str] = mapped_column(Text)  # a DSL expression over alerts
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    during: Mapped[str | None] = mapped_column(String(128))  # e.g. mon-fri 22:00-06:00 in "UTC"
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------- notifications


class Channel(Base):
    """A named Apprise URL; the URL is encrypted at rest."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # chat, email, sms, webhook, push
    url_encrypted: Mapped[str] = mapped_column(Text)
    url_masked: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    rate_limit_per_min: Mapped[int | None] = mapped_column(Integer)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(256), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # {"wait_s", "interval_s", "repeat_s"}: overrides the KLAXON_GROUP_* defaults; interval 0 = no grouping
    grouping: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # The rate limit's current one-minute window: when it began and messages sent in it.
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# sending: claimed by a deliverer; its lease ends at next_attempt_at.
NOTIFICATION_STATUSES = ("pending", "held", "sending", "sent", "failed", "dead", "suppressed")


class Notification(Base):
    """One delivery of one alert transition to one target, and its fate."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    transition: Mapped[str] = mapped_column(String(16))  # fired, resolved, escalated, digest, test
    target: Mapped[str] = mapped_column(
        String(256)
    )  # as named: a channel, team, user or oncall:SCHEDULE
    channel: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    group_key: Mapped[str | None] = mapped_column(String(256), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    fallback_of: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


class EscalationPolicy(Base):
    __tablename__ = "escalation_policies"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    levels: Mapped[list[Any]] = mapped_column(
        Json, default=list
    )  # [{"delay_s": 900, "targets": [...]}]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")


class NotificationGroup(Base):
    """A group's timers (group wait, group interval, repeat interval), per scope and channel."""

    __tablename__ = "notification_groups"
    group_key: Mapped[str] = mapped_column(String(256), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(128))  # the team, or rule:NAME without one
    next_flush_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Escalation(Base):
    """An alert's escalation ladder and when its next level is due (wall clock)."""

    __tablename__ = "escalations"
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    ladder: Mapped[list[Any]] = mapped_column(Json, default=list)  # [{"delay_s", "targets"}]
    level: Mapped[int] = mapped_column(Integer, default=0)  # levels notified so far
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, stopped, done
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (Index("ix_escalations_due", "status", "next_at"),)


class Schedule(Base):
    """An on-call rotation: who an `oncall:NAME` target pages at an instant."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    rotation: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    overrides: Mapped[list[Any]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- people and access


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    default_channels: Mapped[list[Any]] = mapped_column(Json, default=list)
    fallback_channel: Mapped[str | None] = mapped_column(String(128))
    escalation_policy: Mapped[str | None] = mapped_column(String(128))
    quiet_hours: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(256), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text, default="")
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_hours: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    contact_channels: Mapped[list[Any]] = mapped_column(Json, default=list)
    mfa_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_codes: Mapped[list[Any]] = mapped_column(Json, default=list)
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)  # last TOTP step accepted
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # pseudonymized (privacy)


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ApiKey(Base):
    """A key for integrations and scripts; only its hash is kept."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(Json, default=list)
    hmac_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    rate_limit_per_min: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(256), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(Base):
    """A session's refresh token (hashed); reuse of a rotated one revokes its whole family."""

    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Append-only and chained: each entry carries the hash of the one before."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(256), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(128))
    resource_id: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(Json)
    after: Mapped[dict[str, Any] | None] = mapped_column(Json)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Set when an erasure pseudonymized this entry (engine/auth/privacy.py): the erasure's
    # entry id, and the keyed hash of the content as pseudonymized.
    redacted_by: Mapped[int | None] = mapped_column(BigId)
    redacted_hash: Mapped[str | None] = mapped_column(String(64))


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256), default="system")
