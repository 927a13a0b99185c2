"""Initial schema: citizens, channel identities, conversations, messages, tickets, ticket
events, attachments, the outbox and the per-year ticket counter.

Revision ID: a66b7111d49d
Revises:
Create Date: 2026-11-22 03:46:38.714547

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "a66b7111d49d"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizen",
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen")),
    )
    op.create_table(
        "outbox_message",
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column(
            "payload",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "sent", "failed", name="outboxstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_message_dedupe_key")),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_message_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "ticket_counter",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_ticket_counter")),
    )
    op.create_table(
        "channel_identity",
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("external_user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_channel_identity_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_identity")),
        sa.UniqueConstraint(
            "channel", "external_user_id", name=op.f("uq_channel_identity_channel_external_user_id")
        ),
    )
    with op.batch_alter_table("channel_identity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_identity_citizen_id"), ["citizen_id"], unique=False
        )

    op.create_table(
        "conversation",
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "data",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_conversation_citizen_id_citizen"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation")),
        sa.UniqueConstraint("channel", "chat_id", name=op.f("uq_conversation_channel_chat_id")),
    )
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_citizen_id"), ["citizen_id"], unique=False
        )

    op.create_table(
        "ticket",
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("location_text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("ward_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "accepted",
                "need_info",
                "resolved",
                "closed",
                "rejected",
                name="ticketstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("contact_phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("citizen_id", sa.Integer(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("lead_unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("accept_by", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("resolve_by", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("ward_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_ticket_citizen_id_citizen"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket")),
        sa.UniqueConstraint("code", name=op.f("uq_ticket_code")),
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_citizen_created", ["citizen_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_status"), ["status"], unique=False)
        batch_op.create_index("ix_ticket_unit_status", ["lead_unit_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_ward_code"), ["ward_code"], unique=False)

    op.create_table(
        "message",
        sa.Column(
            "direction",
            sa.Enum("in", "out", name="direction", native_enum=False, length=8),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column(
            "channel_message_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        ),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column(
            "nlu",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("handled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_message_citizen_id_citizen"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_message_conversation_id_conversation"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint(
            "channel", "chat_id", "direction", "channel_message_id", name="uq_message_channel_id"
        ),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_chat_created", ["channel", "chat_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_message_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_message_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "ticket_event",
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
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
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_ticket_event_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_event")),
    )
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_event_ticket_at", ["ticket_id", "at"], unique=False)

    op.create_table(
        "attachment",
        sa.Column(
            "channel",
            sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("file_id", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("mime_type", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "ticket_id IS NOT NULL OR message_id IS NOT NULL", name=op.f("ck_attachment_owner")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_attachment_message_id_message"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_attachment_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachment_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_attachment_message_id"))

    op.drop_table("attachment")
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_event_ticket_at")

    op.drop_table("ticket_event")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_message_citizen_id"))
        batch_op.drop_index("ix_message_chat_created")

    op.drop_table("message")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_ward_code"))
        batch_op.drop_index("ix_ticket_unit_status")
        batch_op.drop_index(batch_op.f("ix_ticket_status"))
        batch_op.drop_index("ix_ticket_citizen_created")

    op.drop_table("ticket")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_citizen_id"))

    op.drop_table("conversation")
    with op.batch_alter_table("channel_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_identity_citizen_id"))

    op.drop_table("channel_identity")
    op.drop_table("ticket_counter")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_due")

    op.drop_table("outbox_message")
    op.drop_table("citizen")
