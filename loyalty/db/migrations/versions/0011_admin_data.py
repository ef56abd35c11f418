"""Issue 6: four-eyes adjustments, member merges, outgoing webhooks, CSV imports, non-member sales;
programs gain the adjustment threshold and limits, members the merge link and external id.

Reviewed by hand.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 03:27:06.986479

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_cursors",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_webhook_cursors")),
    )
    op.create_table(
        "import_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("skip_bad_lines", sa.Boolean(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_imported", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_already_present", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_invalid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('members', 'transactions')", name=op.f("ck_import_runs_kind_known")
        ),
        sa.CheckConstraint(
            "status IN ('rejected', 'imported', 'failed')", name=op.f("ck_import_runs_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_import_runs_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_import_runs_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.create_index("ix_import_runs_merchant", ["merchant_id", "id"], unique=False)

    op.create_table(
        "member_merges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("source_member_id", sa.BigInteger(), nullable=False),
        sa.Column("target_member_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_member_merges_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["source_member_id"],
            ["members.id"],
            name=op.f("fk_member_merges_source_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff_users.id"], name=op.f("fk_member_merges_staff_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["target_member_id"],
            ["members.id"],
            name=op.f("fk_member_merges_target_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_merges")),
        sa.UniqueConstraint("source_member_id", name=op.f("uq_member_merges_source_member_id")),
    )
    with op.batch_alter_table("member_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_member_merges_target_member_id"), ["target_member_id"], unique=False
        )

    op.create_table(
        "non_member_sales",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_non_member_sales_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_non_member_sales")),
        sa.UniqueConstraint(
            "program_id", "reference", name="uq_non_member_sales_program_reference"
        ),
    )
    with op.batch_alter_table("non_member_sales", schema=None) as batch_op:
        batch_op.create_index(
            "ix_non_member_sales_program_occurred", ["program_id", "occurred_at"], unique=False
        )

    op.create_table(
        "webhook_endpoints",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("program_id", sa.BigInteger(), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_webhook_endpoints_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_webhook_endpoints_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_endpoints_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index("ix_webhook_deliveries_endpoint", ["endpoint_id", "id"], unique=False)

    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_attempts_delivery_id"), ["delivery_id"], unique=False
        )

    op.create_table(
        "adjustment_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=False),
        sa.Column("requested_by_label", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_by_label", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("journal_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'rejected', 'cancelled')",
            name=op.f("ck_adjustment_requests_status_known"),
        ),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> requested_by",
            name=op.f("ck_adjustment_requests_four_eyes"),
        ),
        sa.CheckConstraint("points <> 0", name=op.f("ck_adjustment_requests_points_not_zero")),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["staff_users.id"],
            name=op.f("fk_adjustment_requests_decided_by_staff_users"),
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["journals.id"], name=op.f("fk_adjustment_requests_journal_id_journals")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_adjustment_requests_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_adjustment_requests_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["staff_users.id"],
            name=op.f("fk_adjustment_requests_requested_by_staff_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjustment_requests")),
    )
    with op.batch_alter_table("adjustment_requests", schema=None) as batch_op:
        batch_op.create_index("ix_adjustment_requests_member", ["member_id", "id"], unique=False)
        batch_op.create_index(
            "ix_adjustment_requests_program_status", ["program_id", "status", "id"], unique=False
        )

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("external_ref", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "uq_members_merchant_external_ref",
            ["merchant_id", "external_ref"],
            unique=True,
            sqlite_where=sa.text("external_ref IS NOT NULL"),
            postgresql_where=sa.text("external_ref IS NOT NULL"),
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_members_merged_into_id_members"), "members", ["merged_into_id"], ["id"]
        )

    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "adjustment_approval_threshold",
                sa.BigInteger(),
                server_default="1000",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("adjustment_limits", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("adjustment_limits")
        batch_op.drop_column("adjustment_approval_threshold")

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_members_merged_into_id_members"), type_="foreignkey"
        )
        batch_op.drop_index(
            "uq_members_merchant_external_ref",
            sqlite_where=sa.text("external_ref IS NOT NULL"),
            postgresql_where=sa.text("external_ref IS NOT NULL"),
        )
        batch_op.drop_column("external_ref")
        batch_op.drop_column("merged_into_id")

    with op.batch_alter_table("adjustment_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_adjustment_requests_program_status")
        batch_op.drop_index("ix_adjustment_requests_member")

    op.drop_table("adjustment_requests")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_delivery_id"))

    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_endpoint")
        batch_op.drop_index(
            "ix_webhook_deliveries_due",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_merchant_id"))

    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("non_member_sales", schema=None) as batch_op:
        batch_op.drop_index("ix_non_member_sales_program_occurred")

    op.drop_table("non_member_sales")
    with op.batch_alter_table("member_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_merges_target_member_id"))

    op.drop_table("member_merges")
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_import_runs_merchant")

    op.drop_table("import_runs")
    op.drop_table("webhook_cursors")
