"""continuous-training policies, loop events, trigger claims and loop state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 09:12:40.118530
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_policies",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition_json", sa.Text(), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_table(
        "loop_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("policy", sa.String(length=250), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("retrain", sa.String(length=64), nullable=True),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loop_events", schema=None) as batch_op:
        batch_op.create_index("ix_loop_events_policy_id", ["policy", "id"], unique=False)
        batch_op.create_index("ix_loop_events_retrain", ["retrain"], unique=False)

    op.create_table(
        "loop_claims",
        sa.Column("policy", sa.String(length=250), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("owner", sa.String(length=250), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy", "key"),
    )
    op.create_table(
        "loop_state",
        sa.Column("policy", sa.String(length=250), nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("updated_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy"),
    )


def downgrade() -> None:
    op.drop_table("loop_state")
    op.drop_table("loop_claims")
    with op.batch_alter_table("loop_events", schema=None) as batch_op:
        batch_op.drop_index("ix_loop_events_retrain")
        batch_op.drop_index("ix_loop_events_policy_id")

    op.drop_table("loop_events")
    op.drop_table("loop_policies")
