"""Indexes for pending redemptions per reward and for a member's tier history by time.

Stock reconciliation reads the pending redemptions of a reward (a partial index keeps the
settled ones out); an order sent late is priced with the tier of its time, found from the first
tier change after it. Reviewed by hand.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:49:35.525138

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reward_redemptions_pending",
            ["reward_id"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.create_index("ix_tier_changes_account_at", ["account_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_tier_changes_account_at")

    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_reward_redemptions_pending",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
