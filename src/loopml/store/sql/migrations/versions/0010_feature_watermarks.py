"""feature materialization watermarks: per view and online store, the committed end time

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_watermarks",
        sa.Column("view", sa.String(length=250), nullable=False),
        sa.Column("target", sa.String(length=250), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("updated_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("view", "target"),
    )


def downgrade() -> None:
    op.drop_table("feature_watermarks")
