"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 16:28:00.683346
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# The rollup cuboids as of this revision (server/analytics/rollups.py); frozen here on purpose:
# a later change to the cuboids gets its own migration.
CUBOIDS = {
    "fleet": (),
    "site": ("site",),
    "device": ("device", "site"),
    "mix": ("prompt", "trigger", "fw", "rssi_band", "battery_band", "health"),
    "slice": ("site", "prompt", "trigger", "fw"),
    "bands": ("site", "prompt", "trigger", "fw", "reason", "rssi_band", "battery_band", "health"),
    "full": ("device", "site", "prompt", "trigger", "fw", "reason", "rssi_band", "battery_band",
             "health"),
}  # fmt: skip
GRAINS = ("hour", "day")
COUNTS = ("promoters", "passives", "detractors", "shown")


def _create_rollup(name: str, dims: tuple[str, ...]) -> None:
    key = [sa.Column(d, sa.String(length=64), nullable=False) for d in dims]
    op.create_table(
        name,
        *key[:1],
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        *key[1:],
        *(sa.Column(c, sa.Integer(), server_default="0", nullable=False) for c in COUNTS),
        sa.PrimaryKeyConstraint(*dims[:1], "bucket", *dims[1:]),
    )


def upgrade() -> None:
    for cuboid, dims in CUBOIDS.items():
        for grain in GRAINS:
            _create_rollup(f"rollup_{cuboid}_{grain}", dims)
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("feedback_id", sa.String(length=96), nullable=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_kind_scope", ["kind", "site", "device", "status"], unique=False
        )
        batch_op.create_index("ix_alert_status", ["status", "id"], unique=False)

    op.create_table(
        "boot",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("anchor_up_ms", sa.BigInteger(), nullable=False),
        sa.Column("errors_max", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device", "boot"),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=96), nullable=True),
        sa.Column("reason_class", sa.String(length=32), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "device",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("fw", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=True),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("health_t", sa.Float(), nullable=True),
        sa.Column("battery_mv", sa.Float(), nullable=True),
        sa.Column("rssi", sa.Float(), nullable=True),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("passives", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("shown", sa.Integer(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("presence_ts", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_site"), ["site"], unique=False)

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

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("up_ms", sa.BigInteger(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=True),
        sa.Column("time_source", sa.String(length=16), nullable=False),
        sa.Column("rx_ts", sa.Float(), nullable=False),
        sa.Column("fw", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("prompt", sa.String(length=32), nullable=False),
        sa.Column("trigger_kind", sa.String(length=64), nullable=False),
        sa.Column("trigger_ref", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("answer_ms", sa.BigInteger(), nullable=True),
        sa.Column("rssi", sa.Float(), nullable=True),
        sa.Column("battery_mv", sa.Float(), nullable=True),
        sa.Column("telemetry_id", sa.String(length=96), nullable=True),
        sa.Column("errors_24h", sa.BigInteger(), nullable=False),
        sa.Column("reboots_24h", sa.Integer(), nullable=False),
        sa.Column("offline_min_24h", sa.Float(), nullable=False),
        sa.Column("rssi_band", sa.String(length=16), nullable=False),
        sa.Column("battery_band", sa.String(length=16), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_device_t", ["device", "t"], unique=False)
        batch_op.create_index("ix_feedback_site_t", ["site", "t"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_t"), ["t"], unique=False)

    op.create_table(
        "presence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("fw", sa.String(length=64), nullable=True),
        sa.Column("boot", sa.BigInteger(), nullable=True),
        sa.Column("rx_ts", sa.Float(), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("presence", schema=None) as batch_op:
        batch_op.create_index("ix_presence_device_rx_ts", ["device", "rx_ts"], unique=False)

    op.create_table(
        "telemetry",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("up_ms", sa.BigInteger(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=True),
        sa.Column("rx_ts", sa.Float(), nullable=False),
        sa.Column("fw", sa.String(length=64), nullable=False),
        sa.Column("battery_mv", sa.Float(), nullable=True),
        sa.Column("rssi", sa.Float(), nullable=True),
        sa.Column("heap_free", sa.Float(), nullable=True),
        sa.Column("heap_min", sa.Float(), nullable=True),
        sa.Column("uptime_s", sa.Float(), nullable=True),
        sa.Column("temp_c", sa.Float(), nullable=True),
        sa.Column("outbox_depth", sa.Float(), nullable=True),
        sa.Column("reset_cause", sa.String(length=64), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("errors_total", sa.BigInteger(), nullable=False),
        sa.Column("errors_delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_device_t", ["device", "t"], unique=False)

    op.create_table(
        "token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert_comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_comment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_comment_alert_id"), ["alert_id"], unique=False)

    op.create_table(
        "login_session",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["token.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_hash"),
    )


def downgrade() -> None:
    for cuboid in CUBOIDS:
        for grain in GRAINS:
            op.drop_table(f"rollup_{cuboid}_{grain}")
    # Dropping a table drops its indexes; children before parents.
    for table in (
        "login_session", "alert_comment", "webhook_delivery", "token", "telemetry",
        "presence", "feedback", "event", "device", "dead_letter", "boot", "alert",
    ):  # fmt: skip
        op.drop_table(table)
