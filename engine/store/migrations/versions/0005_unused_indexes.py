"""Indexes every insert maintained and no query used.

- `ix_alerts_status`: the leading column of `ix_alerts_status_created`, which serves every
  search by status.
- `ix_alerts_fingerprint`, `ix_events_fingerprint`, `ix_events_source`: nothing looks alerts or
  events up by fingerprint or source in the store. The engine deduplicates in its state, the
  alert list filters by source and sorts by time (`ix_alerts_source` stays), and analytics read
  events by id range into their own files.

Each index cost about 1 us of PostgreSQL's CPU an inserted row.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_index("ix_alerts_fingerprint", table_name="alerts")
    op.drop_index("ix_events_fingerprint", table_name="events")
    op.drop_index("ix_events_source", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_source", "events", ["source"])
    op.create_index("ix_events_fingerprint", "events", ["fingerprint"])
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
