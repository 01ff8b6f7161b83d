"""Stored events: feedback with joined health, telemetry, dead letters.

A feedback or telemetry row's primary key is its event `id`, the idempotency key:
ingest stores an id once per type (server/ingest/batch.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, text
from sqlmodel import Field, SQLModel


class EventFields(SQLModel):
    """The envelope every stored event keeps."""

    id: str = Field(primary_key=True, max_length=96)
    device: str = Field(max_length=64)
    site: str = Field(max_length=64)
    seq: int = Field(sa_type=BigInteger)
    boot: int = Field(sa_type=BigInteger)
    up_ms: int = Field(sa_type=BigInteger)
    ts: float | None = None
    rx_ts: float
    fw: str = Field(max_length=64)


class FeedbackBase(EventFields):
    t: float = Field(index=True, description="the event's time: ts, or rebuilt from rx_ts")
    time_source: str = Field(max_length=16)
    outcome: str = Field(max_length=16)
    score: int | None = None
    category: str | None = Field(default=None, max_length=16)
    prompt: str = Field(max_length=32)
    trigger_kind: str = Field(max_length=64)
    trigger_ref: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=64)
    answer_ms: int | None = Field(default=None, sa_type=BigInteger)
    rssi: float | None = None
    battery_mv: float | None = None
    telemetry_id: str | None = Field(default=None, max_length=96)
    errors_24h: int = Field(default=0, sa_type=BigInteger)
    reboots_24h: int = 0
    offline_min_24h: float = 0.0
    rssi_band: str = Field(max_length=16)
    battery_band: str = Field(max_length=16)
    health: str = Field(max_length=16)
    survey: str = Field(
        default="transactional", max_length=16,
        sa_column_kwargs={"server_default": "transactional"},
        description="`transactional` (after one transaction) or `relationship` (periodic, overall)",
    )  # fmt: skip
    role: str | None = Field(default=None, max_length=16, description="who answered; null: unknown")


class Feedback(FeedbackBase, table=True):
    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_device_t", "device", "t"),
        Index("ix_feedback_site_t", "site", "t"),
    )

    gateway: str = Field(max_length=64)


class FeedbackPublic(SQLModel):
    """A feedback item as the read API shows it (docs/protocol.md part 2)."""

    id: str
    device: str
    site: str
    ts: float
    outcome: str
    score: int | None
    category: str | None
    prompt: str
    trigger_kind: str
    trigger_ref: str | None
    reason: str | None
    answer_ms: int | None
    fw: str
    rssi: float | None
    battery_mv: float | None
    rssi_band: str
    battery_band: str
    health: str
    survey: str = "transactional"
    role: str | None = None
    comment: str | None = Field(default=None, description="added from a phone (server/voice/)")
    contact: str | None = Field(default=None, description="how the commenter may be reached")

    @classmethod
    def of(cls, row: Feedback) -> FeedbackPublic:
        return cls(**{**row.model_dump(), "ts": row.t})


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, on both databases."""
    return {f"{dialect}_where": text(condition) for dialect in ("postgresql", "sqlite")}


class Telemetry(EventFields, table=True):
    __tablename__ = "telemetry"
    __table_args__ = (
        Index("ix_telemetry_device_t", "device", "t"),
        # The health join's error lookup (server.ingest.join.histories): rows with new errors.
        Index("ix_telemetry_device_t_errors", "device", "t", **_where("errors_delta > 0")),
    )

    t: float
    battery_mv: float | None = None
    rssi: float | None = None
    heap_free: float | None = None
    heap_min: float | None = None
    uptime_s: float | None = None
    temp_c: float | None = None
    outbox_depth: float | None = None
    reset_cause: str | None = Field(default=None, max_length=64)
    errors: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    errors_total: int = Field(default=0, sa_type=BigInteger)
    errors_delta: int = Field(default=0, sa_type=BigInteger)
    # The host transactions not prompted since boot, by why (firmware/device/sampling.py);
    # NULL when the device sent none, or none the server keeps (server.ingest.validation).
    sampling: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class DeadLetter(SQLModel, table=True):
    """An event the server rejected, kept with its reason so nothing is lost silently."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    gateway: str = Field(max_length=64)
    index: int
    event_id: str | None = Field(default=None, max_length=96)
    reason_class: str = Field(max_length=32)
    error: str
    payload: str
    received_at: float
