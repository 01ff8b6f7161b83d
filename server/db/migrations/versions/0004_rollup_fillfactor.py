"""rollup tables leave room on each page for their rows' next versions (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 21:50:00

A rollup row is updated by every batch that counts into its bucket while the
bucket is current; with full pages each update also adds an entry to the
table's wide key index. `fillfactor` (server/analytics/rollups.py, FILLFACTOR) applies
to pages written from now on. SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The rollup tables as of this revision (server/analytics/rollups.py), frozen here on purpose.
CUBOIDS = (
    "fleet", "by_rssi_band", "by_battery_band", "by_health", "by_fw", "by_trigger",
    "by_reason", "site", "device", "mix", "slice", "bands", "full",
)  # fmt: skip
FILLFACTOR = 70


def _tables() -> list[str]:
    return [f"rollup_{c}_{g}" for c in CUBOIDS for g in ("hour", "day")]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _tables():
        op.execute(f'ALTER TABLE "{name}" SET (fillfactor = {FILLFACTOR})')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _tables():
        op.execute(f'ALTER TABLE "{name}" RESET (fillfactor)')
