"""fleet: desired and reported config, signed commands, releases, rollouts

Revision ID: 0007
Revises: 0010
Create Date: 2026-12-06 23:30:00

Issue 14 (server/models/fleet.py). New tables only; nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The tables as of this revision (server/models/fleet.py), frozen here on purpose.
    op.create_table(
        "fleet_device",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("desired_cfg", sa.BigInteger(), nullable=False),
        sa.Column("desired", sa.JSON(), nullable=False),
        sa.Column("desired_at", sa.Float(), nullable=True),
        sa.Column("desired_by", sa.String(length=128), nullable=True),
        sa.Column("last_n", sa.BigInteger(), nullable=False),
        sa.Column("reported_cfg", sa.BigInteger(), nullable=True),
        sa.Column("reported_cmd", sa.BigInteger(), nullable=True),
        sa.Column("cmd_error", sa.String(length=64), nullable=True),
        sa.Column("update_state", sa.String(length=64), nullable=True),
        sa.Column("reported_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("device"),
    )
    op.create_index("ix_fleet_device_site", "fleet_device", ["site"], unique=False)
    op.create_table(
        "site_config",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )
    op.create_table(
        "fleet_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("payload", sa.String(), nullable=True),
        sa.Column("exp", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device", "n", name="uq_fleet_command_device_n"),
    )
    op.create_index("ix_fleet_command_site_id", "fleet_command", ["site", "id"], unique=False)
    op.create_table(
        "gateway_site",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("fw_url", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )
    op.create_table(
        "release",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("board", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "release_file",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", "path"),
    )
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_answers", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("canary", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("step_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollout_version", "rollout", ["version"], unique=False)
    op.create_table(
        "rollout_device",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rollout_id", "device"),
    )


def downgrade() -> None:
    op.drop_table("rollout_device")
    op.drop_index("ix_rollout_version", table_name="rollout")
    op.drop_table("rollout")
    op.drop_table("release_file")
    op.drop_table("release")
    op.drop_table("gateway_site")
    op.drop_index("ix_fleet_command_site_id", table_name="fleet_command")
    op.drop_table("fleet_command")
    op.drop_table("site_config")
    op.drop_index("ix_fleet_device_site", table_name="fleet_device")
    op.drop_table("fleet_device")
