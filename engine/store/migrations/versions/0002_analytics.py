"""Analytics: an index on alerts.updated_at, so a snapshot refresh reads only what changed.

engine/analytics/snapshot.py re-reads the alerts whose `updated_at` moved since its last
refresh; without this index that is a scan of the whole table on every refresh.

Revision ID: 0002_analytics
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002_analytics"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_updated_at")
