"""Join the three branches that grew from 0001 (accounts, notifications, analytics) into one
head, so `klaxon db revision` prints a single revision and the next migration has one parent.

Revision ID: 0003
Revises: 0002_analytics, 0002_auth, 0002_notify
"""

from __future__ import annotations

revision = "0003"
down_revision = ("0002_analytics", "0002_auth", "0002_notify")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to undo."""
