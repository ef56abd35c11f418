"""Staff labels in full: actor columns become TEXT.

A staff label ("name <email>") reaches 523 characters and a manual tier change appends a reason
of up to 500; VARCHAR(200) made PostgreSQL refuse them (SQLite never checked). Reviewed by hand;
SQLite alters the columns in batch mode (table copy), PostgreSQL in place.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 23:17:22.907209

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column(
            "actor", existing_type=sa.VARCHAR(length=200), type_=sa.Text(), existing_nullable=False
        )

    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.alter_column(
            "created_by",
            existing_type=sa.VARCHAR(length=200),
            type_=sa.Text(),
            existing_nullable=False,
        )
        batch_op.alter_column(
            "published_by",
            existing_type=sa.VARCHAR(length=200),
            type_=sa.Text(),
            existing_nullable=True,
        )

    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.alter_column(
            "actor", existing_type=sa.VARCHAR(length=200), type_=sa.Text(), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.alter_column(
            "actor", existing_type=sa.Text(), type_=sa.VARCHAR(length=200), existing_nullable=True
        )

    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.alter_column(
            "published_by",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=200),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "created_by",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=200),
            existing_nullable=False,
        )

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column(
            "actor", existing_type=sa.Text(), type_=sa.VARCHAR(length=200), existing_nullable=False
        )
