"""Alerts (detractor answers and thresholds), their comments, and webhook deliveries."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class AlertKind(StrEnum):
    """What opened an alert (`server.alerts.rules`); the value is stored and shown."""

    DETRACTOR = "detractor"
    SITE_NPS = "site_nps"
    OFFLINE = "offline"
    BATTERY = "battery"
    CANARY = "canary"  # a rollout halted by its canary (server/fleet/canary.py)


class AlertStatus(StrEnum):
    """Where an alert is in its workflow (`server.alerts.cases`)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_status", "status", "id"),
        Index("ix_alert_kind_scope", "kind", "site", "device", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    status: str = Field(default=AlertStatus.OPEN, max_length=16)
    site: str | None = Field(default=None, max_length=64)
    device: str | None = Field(default=None, max_length=64)
    feedback_id: str | None = Field(default=None, max_length=96)
    title: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    assignee: str | None = Field(default=None, max_length=128)
    created_at: float
    updated_at: float


class AlertComment(SQLModel, table=True):
    __tablename__ = "alert_comment"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", ondelete="CASCADE", index=True)
    author: str = Field(max_length=128)
    text: str
    at: float


class CommentPublic(SQLModel):
    author: str
    text: str
    at: float


class AlertPublic(SQLModel):
    """An alert as the API shows it (docs/protocol.md part 2)."""

    id: int
    kind: str
    status: str
    site: str | None
    device: str | None
    feedback_id: str | None
    title: str
    detail: dict[str, Any]
    assignee: str | None
    created_at: float
    updated_at: float
    comments: list[CommentPublic] = []


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int
    url: str
    attempt: int
    status_code: int | None = None
    error: str | None = None
    delivered: bool = False
    at: float
