"""monitors, monitor runs, reference sketches and alerts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:31:08.511342
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("monitors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitors_model"), ["model"], unique=False)

    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("monitor", sa.String(length=250), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_runs_monitor_time", ["monitor", "time"], unique=False)
        batch_op.create_index("ix_monitor_runs_model_time", ["model", "time"], unique=False)

    op.create_table(
        "monitor_references",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=1024), nullable=False),
        sa.Column("features_json", sa.Text(), nullable=False),
        sa.Column("sketch_json", sa.Text(), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("monitor", sa.String(length=250), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("check_name", sa.String(length=250), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fired_time", sa.BigInteger(), nullable=False),
        sa.Column("resolved_time", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_alerts_monitor_state", ["monitor", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_alerts_monitor_state")

    op.drop_table("monitor_alerts")
    op.drop_table("monitor_references")
    with op.batch_alter_table("monitor_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_runs_model_time")
        batch_op.drop_index("ix_monitor_runs_monitor_time")

    op.drop_table("monitor_runs")
    with op.batch_alter_table("monitors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitors_model"))

    op.drop_table("monitors")
