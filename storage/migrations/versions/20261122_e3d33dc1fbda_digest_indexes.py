"""Indexes for the weekly digests (issue 5): tickets by unit and filing, acceptance and
resolution time; ticket events by kind and time; messages by time.

Revision ID: e3d33dc1fbda
Revises: 45d47be814be
Create Date: 2026-11-22 08:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e3d33dc1fbda"
down_revision: str | Sequence[str] | None = "45d47be814be"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_unit_created", ["lead_unit_id", "created_at"])
        batch_op.create_index("ix_ticket_accepted_at", ["accepted_at"])
        batch_op.create_index("ix_ticket_unit_accepted", ["lead_unit_id", "accepted_at"])
        batch_op.create_index("ix_ticket_resolved_at", ["resolved_at"])
        batch_op.create_index("ix_ticket_unit_resolved", ["lead_unit_id", "resolved_at"])
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_event_kind_at", ["kind", "at"])
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_created_at")
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_event_kind_at")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_unit_resolved")
        batch_op.drop_index("ix_ticket_resolved_at")
        batch_op.drop_index("ix_ticket_unit_accepted")
        batch_op.drop_index("ix_ticket_accepted_at")
        batch_op.drop_index("ix_ticket_unit_created")
