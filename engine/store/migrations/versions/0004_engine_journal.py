"""The worker's journal: the engine state is checkpointed every so often instead of after every
batch, and each step in between is journaled (its events' ids and clock) in the step's own
transaction, so a restarted worker rebuilds the exact state by feeding them again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rules_identity", sa.String(length=200), nullable=True))
    op.create_table(
        "engine_journal",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("until_us", sa.BigInteger(), nullable=False),
        sa.Column("advances", sa.LargeBinary(), nullable=False),
        sa.Column("event_pks", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("engine_journal")
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.drop_column("rules_identity")
        batch_op.drop_column("rules_text")
