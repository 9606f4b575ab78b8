"""Notifications: grouping and rate-limit state on channels, group timers, escalation timers.

Timers that must survive a restart live here, never only in the worker's memory: when a
group's next message is due (`notification_groups`) and when an alert's next escalation level
is due (`escalations`).

Revision ID: 0002_notify
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_notify"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grouping", _JSON, nullable=True))
        batch_op.add_column(
            sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("window_count", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_due", ["status", "next_attempt_at"], unique=False)

    with op.batch_alter_table("escalation_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))

    op.create_table(
        "notification_groups",
        sa.Column("group_key", sa.String(length=256), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("next_flush_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("repeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_key"),
    )
    with op.batch_alter_table("notification_groups", schema=None) as batch_op:
        batch_op.create_index("ix_notification_groups_repeat_at", ["repeat_at"], unique=False)

    op.create_table(
        "escalations",
        sa.Column("alert_id", _ID, nullable=False),
        sa.Column("ladder", _JSON, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index("ix_escalations_due", ["status", "next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_due")
    op.drop_table("escalations")
    with op.batch_alter_table("notification_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_groups_repeat_at")
    op.drop_table("notification_groups")
    with op.batch_alter_table("escalation_policies", schema=None) as batch_op:
        batch_op.drop_column("description")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_due")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("window_count")
        batch_op.drop_column("window_started_at")
        batch_op.drop_column("grouping")
