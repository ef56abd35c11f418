"""Programs' card colours (background, text, accent; checked for contrast when set).

Reviewed by hand.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 02:10:39.992952

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_background", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("card_foreground", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("card_accent", sa.String(length=7), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("card_accent")
        batch_op.drop_column("card_foreground")
        batch_op.drop_column("card_background")
