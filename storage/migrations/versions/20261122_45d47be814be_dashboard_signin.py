"""Dashboard sign-in codes and links (issue 5): one-time, hashed, with expiry and a count
of wrong codes.

Revision ID: 45d47be814be
Revises: c5191cc6f219
Create Date: 2026-11-22 07:32:48.838430

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "45d47be814be"
down_revision: str | Sequence[str] | None = "c5191cc6f219"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_signin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("official_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["official_id"],
            ["official.id"],
            name=op.f("fk_dashboard_signin_official_id_official"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_signin")),
    )
    with op.batch_alter_table("dashboard_signin", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_signin_official_id"), ["official_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dashboard_signin_secret_hash"), ["secret_hash"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_signin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_signin_secret_hash"))
        batch_op.drop_index(batch_op.f("ix_dashboard_signin_official_id"))

    op.drop_table("dashboard_signin")
