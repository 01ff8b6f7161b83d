"""What the cases add up to: "what did we change" (closes, their action and note) with
the times to first response and to close, and the daily digest's figures."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import Session

from server.alerts.cases import public
from server.alerts.inbox import CaseFilter, list_cases
from server.db.sql import table_of
from server.models import Alert
from server.models.alerts import AlertPublic, AlertStatus

A = table_of(Alert).c
DAY_S = 86400.0


class ClosedCase(BaseModel):
    id: int
    kind: str
    site: str | None
    device: str | None
    title: str
    closed_at: float
    closed_by: str | None
    close_action: str | None
    close_note: str | None
    first_response_s: float | None = Field(description="from the start to the first step")
    close_s: float = Field(description="from the start to the close")


class ChangeReport(BaseModel):
    """`GET /api/v1/alerts/report`: cases closed in the window, newest first."""

    closed: list[ClosedCase]
    actions: dict[str, int] = Field(description="closes per action taken ('' for none given)")
    median_first_response_s: float | None
    median_close_s: float | None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def changes(
    session: Session, *, lo: float | None, hi: float | None, site: str | None, limit: int = 1000
) -> ChangeReport:
    stmt = select(Alert).where(A.status == AlertStatus.CLOSED, A.closed_at.is_not(None))
    if lo is not None:
        stmt = stmt.where(A.closed_at >= lo)
    if hi is not None:
        stmt = stmt.where(A.closed_at < hi)
    if site is not None:
        stmt = stmt.where(A.site == site)
    rows = public(
        session, list(session.execute(stmt.order_by(A.closed_at.desc()).limit(limit)).scalars())
    )
    closed = [_closed(c) for c in rows]
    return ChangeReport(
        closed=closed,
        actions=dict(Counter(c.close_action or "" for c in closed).most_common()),
        median_first_response_s=_median(
            [c.first_response_s for c in closed if c.first_response_s is not None]
        ),
        median_close_s=_median([c.close_s for c in closed]),
    )


def _closed(c: AlertPublic) -> ClosedCase:
    start = c.started_at or c.created_at
    assert c.closed_at is not None
    return ClosedCase(
        id=c.id,
        kind=c.kind,
        site=c.site,
        device=c.device,
        title=c.title,
        closed_at=c.closed_at,
        closed_by=c.closed_by,
        close_action=c.close_action,
        close_note=c.close_note,
        first_response_s=None if c.first_response_at is None else c.first_response_at - start,
        close_s=c.closed_at - start,
    )


def digest_figures(
    session: Session, *, site: str | None, now: float, target_s: float, top: int = 10
) -> tuple[dict[str, Any], list[AlertPublic]]:
    """The digest's counts (open, acknowledged, overdue, closed in 24 h) and its most
    urgent active cases, for one site or (None) the fleet."""
    page = list_cases(
        session,
        filters=CaseFilter(state="active", site=site),
        sort="urgency",
        limit=top,
        now=now,
        target_s=target_s,
    )
    closed = select(func.count()).select_from(Alert).where(A.closed_at >= now - DAY_S)
    if site is not None:
        closed = closed.where(A.site == site)
    summary = {
        "open": page.counts[AlertStatus.OPEN],
        "acknowledged": page.counts[AlertStatus.ACKNOWLEDGED],
        "overdue": page.overdue,
        "closed_24h": session.execute(closed).scalar_one(),
    }
    return summary, page.items
