"""Units, routing rules, officials, the directory history, human requests; ticket deadlines,
escalation levels and reopen count (issue 4). Existing tickets get 0/false defaults.

Revision ID: c5191cc6f219
Revises: a66b7111d49d
Create Date: 2026-11-22 07:20:19.357407

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c5191cc6f219"
down_revision: str | Sequence[str] | None = "a66b7111d49d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "directory_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("entity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("entity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("change", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "old_value",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "new_value",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_change")),
    )
    op.create_table(
        "official",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "handler", "supervisor", "leader", name="officialrole", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("external_user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("invite_code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("invite_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("linked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_official")),
        sa.UniqueConstraint(
            "channel", "external_user_id", name=op.f("uq_official_channel_external_user_id")
        ),
        sa.UniqueConstraint("invite_code_hash", name=op.f("uq_official_invite_code_hash")),
    )
    with op.batch_alter_table("official", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_official_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "routing_rule",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("ward_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("to_ward_unit", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rule")),
    )
    op.create_table(
        "unit",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("ward", "city", "company", name="unitkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("parent_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("ward_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("intake", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit")),
    )
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unit_ward_code"), ["ward_code"], unique=False)

    op.create_table(
        "human_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "answered", name="humanrequeststatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("answered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["official.id"],
            name=op.f("fk_human_request_answered_by_official"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_human_request_citizen_id_citizen"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_human_request_message_id_message"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_human_request")),
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "severity",
                sa.Enum(
                    "urgent", "normal", "complex", name="severity", native_enum=False, length=16
                ),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
        batch_op.add_column(
            sa.Column("unrouted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("accepted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("accept_escalation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("resolve_escalation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(batch_op.f("ix_ticket_created_at"), ["created_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_created_at"))
        batch_op.drop_column("reopen_count")
        batch_op.drop_column("resolve_escalation")
        batch_op.drop_column("accept_escalation")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("unrouted")
        batch_op.drop_column("chat_id")
        batch_op.drop_column("severity")

    op.drop_table("human_request")
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unit_ward_code"))

    op.drop_table("unit")
    op.drop_table("routing_rule")
    with op.batch_alter_table("official", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_official_unit_id"))

    op.drop_table("official")
    op.drop_table("directory_change")
