"""single-dimension rollups for fleet-wide splits (drivers view, NPS by trigger)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SINGLE = ("rssi_band", "battery_band", "health", "fw", "trigger", "reason")
GRAINS = ("hour", "day")
COUNTS = ("promoters", "passives", "detractors", "shown")


def upgrade() -> None:
    # Existing feedback is counted into the new tables from the finest rollup, so an
    # upgraded database answers the same figures as before.
    for dim in SINGLE:
        for grain in GRAINS:
            name = f"rollup_by_{dim}_{grain}"
            op.create_table(
                name,
                sa.Column(dim, sa.String(length=64), nullable=False),
                sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
                *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in COUNTS),
                sa.PrimaryKeyConstraint(dim, "bucket"),
            )
            sums = ", ".join(f"SUM({c})" for c in COUNTS)
            op.execute(
                f"INSERT INTO {name} ({dim}, bucket, {', '.join(COUNTS)}) "
                f"SELECT {dim}, bucket, {sums} FROM rollup_full_{grain} GROUP BY {dim}, bucket"
            )


def downgrade() -> None:
    for dim in SINGLE:
        for grain in GRAINS:
            op.drop_table(f"rollup_by_{dim}_{grain}")
