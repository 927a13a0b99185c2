"""Dashboard sessions kept on the server (issue 12): sign-out and an official's removal end
them. Sign-in codes remember the client address they were asked from, for its budget.

Revision ID: 7c1e5a9d2b40
Revises: e3d33dc1fbda
Create Date: 2026-12-06 05:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7c1e5a9d2b40"
down_revision: str | Sequence[str] | None = "e3d33dc1fbda"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("official_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["official_id"],
            ["official.id"],
            name=op.f("fk_dashboard_session_official_id_official"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_session_token_hash")),
    )
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_session_official_id"), ["official_id"], unique=False
        )
    with op.batch_alter_table("dashboard_signin", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("client", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_dashboard_signin_client"), ["client"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dashboard_signin_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_signin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_signin_created_at"))
        batch_op.drop_index(batch_op.f("ix_dashboard_signin_client"))
        batch_op.drop_column("client")
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_session_official_id"))
    op.drop_table("dashboard_session")
