"""no separate event ledger: feedback and telemetry keys are the idempotency keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:30:00

Every accepted event already has a row under its id in `feedback` or
`telemetry` (each with `id` as primary key, and device and seq), so the
`event` table repeated a thousand index entries per batch. Gaps are read from
the two tables; ingest detects a resent id by its key (server/ingest/batch.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_device_seq")
    op.drop_table("event")


def downgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("rx_ts", sa.Float(), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_device_seq", ["device", "seq"], unique=False)
    # The ledger back from the stored events (telemetry rows do not keep their
    # gateway: the device's last one stands in). An id stored as both types
    # (only a device reusing a seq does that) keeps its feedback row.
    op.execute(
        "INSERT INTO event (id, device, seq, type, rx_ts, gateway)"
        " SELECT id, device, seq, 'feedback', rx_ts, gateway FROM feedback"
    )
    op.execute(
        "INSERT INTO event (id, device, seq, type, rx_ts, gateway)"
        " SELECT t.id, t.device, t.seq, 'telemetry', t.rx_ts, COALESCE(d.gateway, '')"
        " FROM telemetry t LEFT JOIN device d ON d.id = t.device"
        " WHERE NOT EXISTS (SELECT 1 FROM feedback f WHERE f.id = t.id)"
    )
