"""Member sessions remember when they were given the member's rotating-code secret: the wallet's
card screen fetches it once per session, a second request is refused.

Reviewed by hand.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 01:15:16.871461

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("card_secret_delivered_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.drop_column("card_secret_delivered_at")
