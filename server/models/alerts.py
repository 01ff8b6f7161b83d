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
    # The case's clock (issue 16): from when the customer waits (a detractor's answer,
    # else the raise), the first step a person took, its close, and when the watch
    # escalated it for missing the response-time target. None (before 0008): created_at.
    started_at: float | None = None
    first_response_at: float | None = None
    closed_at: float | None = None
    escalated_at: float | None = None
    # How it was closed, in fields of their own so "what did we change" is a report.
    closed_by: str | None = Field(default=None, max_length=128)
    close_note: str | None = None
    close_action: str | None = Field(default=None, max_length=200)


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
    answered_at: float | None = None
    started_at: float | None = None
    first_response_at: float | None = None
    closed_at: float | None = None
    escalated_at: float | None = None
    closed_by: str | None = None
    close_note: str | None = None
    close_action: str | None = None
    overdue: bool = False


class RoutingRule(SQLModel, table=True):
    """Who a new case of a site and kind goes to (either may be empty: any); the most
    specific rule wins (`server.alerts.routing`)."""

    __tablename__ = "routing_rule"

    id: int | None = Field(default=None, primary_key=True)
    site: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=16)
    assignee: str = Field(max_length=254)
    created_at: float


class CaseList(SQLModel):
    """`GET /api/v1/alerts`: one page of cases, with counts per status under the same
    filters (and how many are overdue), and the total the page is part of."""

    items: list[AlertPublic]
    counts: dict[str, int]
    overdue: int
    total: int
    offset: int
    limit: int


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
