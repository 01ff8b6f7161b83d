"""the north star's unprompted transactions: `boot_sampling` and `unprompted_day`

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 21:40:00

Readings carry, per boot, the host transactions the device did not prompt, by why
(0014 keeps them). Ingest now turns those totals into counts per day
(`server.ingest.unprompted`): `boot_sampling` holds each boot's highest total by
reason, `unprompted_day` what the readings added, per site, UTC day, health at the
reading and reason. Nothing is backfilled: a boot still running counts its whole
total at its first reading after the upgrade, on that reading's day; boots that
ended before it are not counted (docs/programme.md, "The north star").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "boot_sampling",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("boot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device", "boot", "reason"),
    )
    op.create_table(
        "unprompted_day",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site", "bucket", "health", "reason"),
    )


def downgrade() -> None:
    op.drop_table("unprompted_day")
    op.drop_table("boot_sampling")
