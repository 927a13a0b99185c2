"""What Open311 publishes (issue 12 item 2): the ticket's public summary, written or
approved by an official, and a `public` flag on ticket events (only those notes are
published).

Revision ID: b7e2c4a91f03
Revises: 7c1e5a9d2b40
Create Date: 2026-12-06 05:50:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b7e2c4a91f03"
down_revision: str | Sequence[str] | None = "7c1e5a9d2b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_summary", sa.String(), nullable=True))
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_column("public")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("public_summary")
