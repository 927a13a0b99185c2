"""One chat at a time cluster-wide (issue 18) and nothing filed twice (issue 13): a chat's
claim (conversation.claim_token/claim_until), a chat's unhandled messages by id (partial
index), the first press of a keyboard (message.pressed_by), the message a ticket was filed
from (ticket.source_message_id, unique), and the channels' shared flood-control pause.

Revision ID: d4a8c1e7f2b6
Revises: c3f19a7d5e21
Create Date: 2026-12-06 08:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d4a8c1e7f2b6"
down_revision: str | Sequence[str] | None = "c3f19a7d5e21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNHANDLED = sa.text("handled_at IS NULL AND direction = 'in'")


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claim_token", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("claim_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pressed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
    op.create_index(
        "ix_message_chat_unhandled",
        "message",
        ["channel", "chat_id", "id"],
        sqlite_where=UNHANDLED,
        postgresql_where=UNHANDLED,
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_message_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_ticket_source_message_id"), ["source_message_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_source_message_id_message"),
            "message",
            ["source_message_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "channel_pause",
        sa.Column(
            "channel",
            sa.Enum(
                "telegram",
                "zalo",
                "web",
                name="channel",
                native_enum=False,
                create_constraint=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_pause")),
    )


def downgrade() -> None:
    op.drop_table("channel_pause")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ticket_source_message_id_message"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_ticket_source_message_id"), type_="unique")
        batch_op.drop_column("source_message_id")
    op.drop_index("ix_message_chat_unhandled", table_name="message")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("pressed_by")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("claim_until")
        batch_op.drop_column("claim_token")
