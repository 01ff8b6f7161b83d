"""The alert workflow: list, read, acknowledge, assign, comment, close (keyword-only CRUD)."""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy import func, select
from sqlmodel import Session

from server.db.engine import writing
from server.db.sql import table_of
from server.ingest.validation import no_nul
from server.models import Alert, AlertComment, WebhookDelivery
from server.models.alerts import AlertKind, AlertPublic, AlertStatus, CommentPublic
from server.schemas import AlertList, DeliveryLog

A = table_of(Alert).c
C = table_of(AlertComment).c
W = table_of(WebhookDelivery).c


def _public(session: Session, alerts: list[Alert]) -> list[AlertPublic]:
    ids = [a.id for a in alerts]
    comments: dict[int, list[CommentPublic]] = defaultdict(list)
    if ids:
        for c in session.execute(
            select(AlertComment).where(C.alert_id.in_(ids)).order_by(C.at, C.id)
        ).scalars():
            comments[c.alert_id].append(CommentPublic(author=c.author, text=c.text, at=c.at))
    return [AlertPublic(**a.model_dump(), comments=comments.get(a.id or 0, [])) for a in alerts]


def list_alerts(
    session: Session,
    *,
    status: str = AlertStatus.OPEN,
    kind: str | None = None,
    site: str | None = None,
    limit: int = 100,
) -> AlertList:
    stmt = select(Alert).order_by(A.id.desc()).limit(limit)
    count = select(A.status, func.count()).group_by(A.status)
    if status != "all":
        stmt = stmt.where(A.status == status)
    for col, value in ((A.kind, kind), (A.site, site)):
        if value is not None:
            stmt = stmt.where(col == value)
            count = count.where(col == value)
    counts = dict.fromkeys(AlertStatus, 0) | {s: n for s, n in session.execute(count)}
    return AlertList(items=_public(session, list(session.execute(stmt).scalars())), counts=counts)


# `alert.id` is a 32-bit INTEGER on PostgreSQL, which refuses to compare it with a
# larger number (DataError; fuzzing found `GET /api/v1/alerts/2952878389` a 500).
ALERT_ID_MAX = 2**31 - 1


def get_alert(session: Session, *, alert_id: int) -> AlertPublic | None:
    if not 1 <= alert_id <= ALERT_ID_MAX:
        return None
    alert = session.get(Alert, alert_id)
    return None if alert is None else _public(session, [alert])[0]


def update_alert(
    session: Session,
    *,
    alert_id: int,
    status: str | None = None,
    assignee: str | None = None,
    comment: tuple[str, str] | None = None,
) -> AlertPublic | None:
    """Apply one workflow step; a comment is (author, text). Concurrent steps queue
    (`db.writing`) rather than fail. NulInText for text no database column holds."""
    no_nul(assignee=assignee, comment=None if comment is None else comment[1])
    if not 1 <= alert_id <= ALERT_ID_MAX:
        return None
    with writing(session):
        alert = session.get(Alert, alert_id)
        if alert is None:
            session.rollback()
            return None
        now = time.time()
        if status is not None:
            alert.status = status
        if assignee is not None:
            alert.assignee = assignee
        if comment is not None:
            session.add(AlertComment(alert_id=alert_id, author=comment[0], text=comment[1], at=now))
        alert.updated_at = now
        session.add(alert)
        session.commit()
    return _public(session, [alert])[0]


def comment_on_answer(
    session: Session, *, feedback_id: str, device: str, author: str, text: str
) -> int | None:
    """Add a comment to the detractor alert that holds this answer (opened by it, or
    among its latest answers once collapsed): that alert's id, or None if there is none."""
    recent = select(Alert).where(A.kind == AlertKind.DETRACTOR, A.device == device)
    for alert in session.execute(recent.order_by(A.id.desc()).limit(50)).scalars():
        latest = alert.detail.get("latest", [])
        if alert.feedback_id == feedback_id or any(a.get("id") == feedback_id for a in latest):
            assert alert.id is not None
            update_alert(session, alert_id=alert.id, comment=(author, text))
            return alert.id
    return None


def deliveries(session: Session, *, limit: int = 100) -> DeliveryLog:
    rows = session.execute(select(WebhookDelivery).order_by(W.id.desc()).limit(limit)).scalars()
    return DeliveryLog(items=list(rows))
