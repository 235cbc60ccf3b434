"""prediction log and ground truth

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:12:31.204117
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("min_time", sa.BigInteger(), nullable=False),
        sa.Column("max_time", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_segments_model_time", ["model", "min_time", "max_time"], unique=False
        )

    op.create_table(
        "prediction_requests",
        sa.Column("request_id", sa.String(length=250), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["prediction_segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "model", "version"),
    )
    with op.batch_alter_table("prediction_requests", schema=None) as batch_op:
        batch_op.create_index("ix_prediction_requests_model_time", ["model", "time"], unique=False)

    op.create_table(
        "prediction_labels",
        sa.Column("request_id", sa.String(length=250), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("label_json", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("received_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "row"),
    )


def downgrade() -> None:
    op.drop_table("prediction_labels")
    with op.batch_alter_table("prediction_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_requests_model_time")

    op.drop_table("prediction_requests")
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_segments_model_time")

    op.drop_table("prediction_segments")
