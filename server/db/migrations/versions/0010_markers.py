"""markers: site events an operator records, for the time charts

Revision ID: 0010
Revises: 0005
Create Date: 2026-12-06 23:40:00

Issue 16. Release markers are derived from the rollups and not stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The table as of this revision (server/models/markers.py), frozen here on purpose.
    op.create_table(
        "marker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("marker", schema=None) as batch_op:
        batch_op.create_index("ix_marker_site_at", ["site", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("marker")
