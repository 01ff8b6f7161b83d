"""voice: comments from a phone, joined to their answer by event id

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-06 23:30:00

Issue 15, "The voice from a phone". One row per answer (the primary key is the
event id, so a link works once); `held` while the answer has not arrived yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The table as of this revision (server/models/voice.py), frozen here on purpose.
    op.create_table(
        "voice_comment",
        sa.Column("event_id", sa.String(length=96), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.String(length=1000), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("voice_comment", schema=None) as batch_op:
        batch_op.create_index("ix_voice_comment_held", ["held"], unique=False)


def downgrade() -> None:
    op.drop_table("voice_comment")
