"""Accounts and the audit trail: TOTP replay guard, erasure marks, pseudonymized audit rows.

- users.mfa_last_step: the last TOTP time step accepted, so a code cannot be used twice;
- users.erased_at: when the user was erased (pseudonymized) for privacy;
- audit_log.redacted_by / redacted_hash: an entry pseudonymized by an erasure keeps its chain
  hash; `redacted_by` names the erasure entry and `redacted_hash` is the keyed hash of the
  pseudonymized content (engine/auth/privacy.py explains how `klaxon audit verify` uses them).

Revision ID: 0002_auth
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_auth"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redacted_by", _BIG, nullable=True))
        batch_op.add_column(sa.Column("redacted_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("redacted_hash")
        batch_op.drop_column("redacted_by")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("mfa_last_step")
