"""Escalating overdue cases: each once, by the watch (`server.alerts.watch`), told as an
`escalated` change (stream, webhooks, e-mail) and shown with a marker."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from server.alerts.cases import public
from server.alerts.inbox import overdue_clause
from server.db.sql import table_of
from server.models import Alert
from server.models.alerts import AlertPublic

A = table_of(Alert).c
BATCH = 500  # at most this many per check; the rest on the next


def escalate_overdue(session: Session, *, now: float, target_s: float) -> list[AlertPublic]:
    """Mark the overdue cases not yet escalated; commit is the caller's."""
    found = list(
        session.execute(
            select(Alert)
            .where(overdue_clause(now, target_s), A.escalated_at.is_(None))
            .order_by(A.id)
            .limit(BATCH)
        ).scalars()
    )
    for alert in found:
        alert.escalated_at = now
        session.add(alert)
    session.flush()
    return public(session, found, now=now, target_s=target_s)
