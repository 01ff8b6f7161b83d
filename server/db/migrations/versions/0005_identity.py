"""identity: device registry, site-bound tokens with last use and revocation time, login failures

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:50:00

Issue 12. `token.site` binds a gateway token to one site (a gateway token from
before this revision has none and is refused until re-created with `--site`,
server/api/deps.py). `token.revoked` stays and is kept equal to
`revoked_at IS NOT NULL`; a token revoked before this revision gets its
creation time as its revocation time, the only time known for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The tables as of this revision (server/models/registry.py, auth.py), frozen here on purpose.
    op.create_table(
        "registered_device",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("device"),
        sa.UniqueConstraint("username"),
    )
    with op.batch_alter_table("registered_device", schema=None) as batch_op:
        batch_op.create_index("ix_registered_device_site", ["site"], unique=False)
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_login_failure_key_at", ["key", "at"], unique=False)
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))
    op.execute("UPDATE token SET revoked_at = created_at WHERE revoked")


def downgrade() -> None:
    op.execute("UPDATE token SET revoked = (revoked_at IS NOT NULL)")
    with op.batch_alter_table("token", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("site")
    op.drop_table("login_failure")
    op.drop_table("registered_device")
