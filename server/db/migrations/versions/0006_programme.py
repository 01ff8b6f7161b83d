"""programme: feedback survey and role, rollups by survey and role, targets and choices

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-06 23:20:00

Issue 15. Every stored answer so far is transactional (the contract's default) with
an unknown role, so the new rollups start as copies of `rollup_site_*` and
`rollup_full_*` with survey `transactional` and role `''` (null): an upgraded
database answers the same figures. The earlier rollup tables keep counting
transactional answers only. Downgrading drops what this adds; relationship
answers stored by then stay in `feedback` without their survey.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None

# The tables as of this revision (server/analytics/rollups.py, server/models/programme.py),
# frozen here on purpose.
HEALTH = ("device", "site", "prompt", "trigger", "fw", "reason", "rssi_band", "battery_band",
          "health")  # fmt: skip
# New cuboid -> (its dimensions, the earlier cuboid it starts from).
NEW = {
    "programme": (("site", "survey", "role"), "site"),
    "programme_full": ((*HEALTH, "survey", "role"), "full"),
}
COUNTS = ("promoters", "passives", "detractors", "shown")
FILLFACTOR = 70


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "survey", sa.String(length=16), server_default="transactional", nullable=False
            )
        )
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=True))
    options: dict[str, Any] = (
        {"postgresql_with": {"fillfactor": FILLFACTOR}}
        if op.get_bind().dialect.name == "postgresql"
        else {}
    )
    for cuboid, (dims, source) in NEW.items():
        for grain in ("hour", "day"):
            name = f"rollup_{cuboid}_{grain}"
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
            kept = [d for d in dims if d not in ("survey", "role")]
            cols = ", ".join([*kept, "survey", "role", "bucket", *COUNTS])
            sums = ", ".join(f"SUM({c})" for c in COUNTS)
            op.execute(
                f"INSERT INTO {name} ({cols}) SELECT {', '.join(kept)}, 'transactional', '',"
                f" bucket, {sums} FROM rollup_{source}_{grain}"
                f" GROUP BY {', '.join([*kept, 'bucket'])}"
            )
    op.create_table(
        "nps_target",
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("survey", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("benchmark", sa.Float(), nullable=True),
        sa.Column("benchmark_label", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nps_target_scope", "nps_target", ["site", "survey", "set_at"])
    op.create_table(
        "programme_choice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_programme_choice_key", "programme_choice", ["key", "set_at"])


def downgrade() -> None:
    op.drop_index("ix_programme_choice_key", table_name="programme_choice")
    op.drop_table("programme_choice")
    op.drop_index("ix_nps_target_scope", table_name="nps_target")
    op.drop_table("nps_target")
    for cuboid in NEW:
        for grain in ("hour", "day"):
            op.drop_table(f"rollup_{cuboid}_{grain}")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("role")
        batch_op.drop_column("survey")
