"""Vendor connections (a merchant's Toast restaurant or Shopify shop, its encrypted secret and
the terminal its requests act as), the log of vendor messages (replayed answers, effects),
and the sale a rotating code redeemed on (more redemptions of that sale may use the code).

Reviewed by hand.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:40:24.543601

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vendor_connections",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("terminal_id", sa.BigInteger(), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("secret_hint", sa.String(length=8), nullable=False),
        sa.Column("calling_code", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_vendor_connections_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_vendor_connections_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_connections")),
        sa.UniqueConstraint("vendor", "account", name="uq_vendor_connections_vendor_account"),
    )
    op.create_table(
        "vendor_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.String(length=128), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("effects", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["vendor_connections.id"],
            name=op.f("fk_vendor_messages_connection_id_vendor_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_messages")),
        sa.UniqueConstraint(
            "connection_id", "message_key", name="uq_vendor_messages_connection_key"
        ),
    )

    op.add_column(
        "rotating_code_uses", sa.Column("reference", sa.String(length=200), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("rotating_code_uses") as batch:
        batch.drop_column("reference")
    op.drop_table("vendor_messages")
    op.drop_table("vendor_connections")
