"""telemetry: a partial index of the rows with new errors, for the health join's lookup

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:10:00

The health join reads each batch device's error increments of the last day
(`server.ingest.join.histories`, `errors_delta > 0`). Through (device, t) it read
every telemetry row of those devices in that day to keep the few with errors; this
index holds only those (docs/benchmarks.md, "Rollup keys, the error lookup, binary
lists"). Both databases take partial indexes; on PostgreSQL the partitioned table's
index is made on each partition, and on those made later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ERRORS = "errors_delta > 0"  # as the lookup writes it: a literal, so a plan can use the index


def upgrade() -> None:
    op.create_index(
        "ix_telemetry_device_t_errors", "telemetry", ["device", "t"],
        postgresql_where=sa.text(ERRORS), sqlite_where=sa.text(ERRORS),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_telemetry_device_t_errors", table_name="telemetry")
