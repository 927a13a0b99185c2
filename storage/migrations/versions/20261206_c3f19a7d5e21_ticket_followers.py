"""One problem, one ticket (issue 19): citizens who follow a ticket instead of filing the same
problem again, and the ticket a duplicate was merged into.

Revision ID: c3f19a7d5e21
Revises: b7c2e1f04a93
Create Date: 2026-12-06 08:10:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c3f19a7d5e21"
down_revision: str | Sequence[str] | None = "b7c2e1f04a93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHANNEL = sa.Enum("telegram", "zalo", "web", name="channel", native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "ticket_follower",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=True),
        sa.Column("channel", _CHANNEL, nullable=False),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_ticket_follower_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_ticket_follower_citizen_id_citizen"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_follower")),
        sa.UniqueConstraint(
            "ticket_id",
            "channel",
            "chat_id",
            name=op.f("uq_ticket_follower_ticket_id_channel_chat_id"),
        ),
    )
    with op.batch_alter_table("ticket_follower", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_follower_ticket_id"), ["ticket_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_follower_citizen_id"), ["citizen_id"], unique=False
        )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_merged_into_id_ticket"),
            "ticket",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ticket_merged_into_id_ticket"), type_="foreignkey")
        batch_op.drop_column("merged_into_id")
    with op.batch_alter_table("ticket_follower", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_follower_citizen_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_follower_ticket_id"))
    op.drop_table("ticket_follower")
