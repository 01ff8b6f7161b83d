"""rollups: the transactional `full` cuboid and the day table of `programme_full` go

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 08:50:00

Both held a row per answer at ingest (docs/benchmarks.md, "Fewer rollup rows per
answer"). `rollup_programme_full_hour` holds what they held: every survey with the
role, so its transactional rows summed over role are `rollup_full_*`'s, and its
hours summed by day are its day table's (both were kept from the same staged counts
since 0006, which started `programme_full` as a copy of `full`). Reads now take
those from it (`server.analytics.figures`): no figure changes and nothing is copied
on the way up. Downgrading rebuilds the three tables from the hour table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The tables as of this revision (server/analytics/rollups.py), frozen here on purpose.
HEALTH = ("device", "site", "prompt", "trigger", "fw", "reason", "rssi_band", "battery_band",
          "health")  # fmt: skip
PROGRAMME = (*HEALTH, "survey", "role")
COUNTS = ("promoters", "passives", "detractors", "shown")
FILLFACTOR = 70
SOURCE = "rollup_programme_full_hour"
# Dropped table -> (its key dimensions, only transactional answers, its grain in seconds).
DROPPED = {
    "rollup_full_hour": (HEALTH, True, 3600),
    "rollup_full_day": (HEALTH, True, 86400),
    "rollup_programme_full_day": (PROGRAMME, False, 86400),
}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_table(name)


def downgrade() -> None:
    options: dict[str, Any] = (
        {"postgresql_with": {"fillfactor": FILLFACTOR}}
        if op.get_bind().dialect.name == "postgresql"
        else {}
    )
    for name, (dims, transactional, grain) in DROPPED.items():
        key = [sa.Column(d, sa.String(length=64), nullable=False) for d in dims]
        op.create_table(
            name,
            key[0],
            sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
            *key[1:],
            *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in COUNTS),
            sa.PrimaryKeyConstraint(dims[0], "bucket", *dims[1:]),
            **options,
        )
        bucket = f"bucket / {grain} * {grain}"
        where = " WHERE survey = 'transactional'" if transactional else ""
        op.execute(
            f"INSERT INTO {name} ({', '.join([*dims, 'bucket', *COUNTS])})"
            f" SELECT {', '.join(dims)}, {bucket}, {', '.join(f'SUM({c})' for c in COUNTS)}"
            f" FROM {SOURCE}{where} GROUP BY {', '.join([*dims, bucket])}"
        )
