"""feedback and telemetry partitioned by month of `t` on PostgreSQL; SQLite unchanged

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07 02:30:00

Issue 17. Each table becomes a range-partitioned one (primary key (id, t)) with
a partition per month from its oldest row's month to three months ahead, a
default partition, and an unpartitioned id ledger that keeps ids unique across
partitions (server/db/partitions.py says why). The rows are copied across.
"""

from __future__ import annotations

import time

from alembic import op

from server.db.partitions import MONTHS_AHEAD, PARTITIONED, Month, partition, unpartition

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

OLDEST = 120  # months before now: a partition per month at most this far back


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    this = Month.of(time.time())
    for table in PARTITIONED:
        oldest = conn.exec_driver_sql(f'SELECT min(t) FROM "{table}"').scalar()
        first = this if oldest is None else max(Month.of(oldest), this.plus(-OLDEST))
        partition(conn, table, min(first, this), this.plus(MONTHS_AHEAD))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table in PARTITIONED:
        unpartition(conn, table)
