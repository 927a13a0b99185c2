"""The durable inbox and replies through the outbox (issue 13): a reply's outbox row names
the incoming message it answers; indexes for unhandled incoming messages and for the
earlier unsent messages of a recipient.

Revision ID: b7c2e1f04a93
Revises: b7e2c4a91f03
Create Date: 2026-12-06 05:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b7c2e1f04a93"
down_revision: str | Sequence[str] | None = "b7e2c4a91f03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_to_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_outbox_message_reply_to", ["reply_to_id"])
        batch_op.create_index("ix_outbox_message_recipient", ["channel", "recipient", "status"])
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_unhandled", ["direction", "handled_at"])
    # Until now a message left unhandled was never handled (and officials' messages were
    # never marked): the past is not replayed, only what is stored from now on.
    op.execute(
        "UPDATE message SET handled_at = created_at WHERE direction = 'in' AND handled_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_unhandled")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_recipient")
        batch_op.drop_index("ix_outbox_message_reply_to")
        batch_op.drop_column("reply_to_id")
