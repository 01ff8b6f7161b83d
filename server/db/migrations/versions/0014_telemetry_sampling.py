"""telemetry: the device's sampling counters (`sampling`), kept instead of ignored

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 17:10:00

Each telemetry event carries the host transactions its device did not prompt since
boot, by why (`{"sampled_out": n, "throttled": n, "expired": n}`, docs/firmware.md).
The contract lets the server ignore unknown fields, and it did: the counts that say
how many transactions the 1-in-k sampling left unasked were lost at the server. A
nullable JSON column keeps them (NULL for rows stored before, and for events that send
none). On PostgreSQL the partitioned table's column is added to every partition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("telemetry", sa.Column("sampling", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("telemetry", "sampling")  # SQLite 3.35 and later drop a column in place
