"""people and cases: accounts, invitation and reset links, routing rules, the case clock

Revision ID: 0008
Revises: 0009
Create Date: 2026-12-06 23:30:00

Issue 16. An alert becomes a case: the first response, the close (by whom, with a
note and the action taken in their own columns) and the escalation are recorded
on its row. `person` holds accounts (argon2id password hashes), `person_link` the
SHA-256 of one-time invitation and reset links, `routing_rule` who new cases go to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None

CASE_COLUMNS = (
    "started_at",
    "first_response_at",
    "closed_at",
    "escalated_at",
    "closed_by",
    "close_note",
    "close_action",
)


def upgrade() -> None:
    # The tables as of this revision (server/models/people.py, alerts.py), frozen here.
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("first_response_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("closed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("close_note", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("close_action", sa.String(length=200), nullable=True))
    # A case closed before this revision: its last update is the best close time known.
    op.execute("UPDATE alert SET closed_at = updated_at WHERE status = 'closed'")
    op.create_table(
        "routing_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("assignee", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("disabled_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["token.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "person_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("person_link", schema=None) as batch_op:
        batch_op.create_index("ix_person_link_person_id", ["person_id"], unique=False)


def downgrade() -> None:
    op.drop_table("person_link")
    op.drop_table("person")
    op.drop_table("routing_rule")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        for column in reversed(CASE_COLUMNS):
            batch_op.drop_column(column)
