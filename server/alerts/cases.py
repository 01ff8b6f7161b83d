"""The case workflow: list, read, acknowledge, assign, comment, close (keyword-only CRUD).

A case is an alert row: detractors of one device and trigger kind, or a site's
threshold breach, gathered (`server.alerts.store`). Every step a person takes is
timed (the first response, the close), and a close keeps its note and the action
taken in fields of their own (`server.alerts.report`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import Session

from server.alerts.clock import answered_at, is_overdue, offline_title, start_of
from server.db.engine import writing
from server.db.sql import table_of
from server.ingest.validation import no_nul
from server.models import Alert, AlertComment, WebhookDelivery
from server.models.alerts import AlertKind, AlertPublic, AlertStatus, CommentPublic
from server.schemas import DeliveryLog

A = table_of(Alert).c
C = table_of(AlertComment).c
W = table_of(WebhookDelivery).c
DEFAULT_TARGET_S = 3600.0


def public(
    session: Session,
    alerts: Sequence[Alert],
    *,
    now: float | None = None,
    target_s: float = DEFAULT_TARGET_S,
) -> list[AlertPublic]:
    """Cases as the API shows them: comments, the answer time, the clock, live titles."""
    now = time.time() if now is None else now
    ids = [a.id for a in alerts]
    comments: dict[int, list[CommentPublic]] = defaultdict(list)
    if ids:
        for c in session.execute(
            select(AlertComment).where(C.alert_id.in_(ids)).order_by(C.at, C.id)
        ).scalars():
            comments[c.alert_id].append(CommentPublic(author=c.author, text=c.text, at=c.at))
    out = []
    for a in alerts:
        row = a.model_dump()
        if a.kind == AlertKind.OFFLINE:
            row["title"] = offline_title(row, now)
        row |= {
            "comments": comments.get(a.id or 0, []),
            "answered_at": answered_at(row),
            "started_at": start_of(row),
            "overdue": is_overdue(row, now=now, target_s=target_s),
        }
        out.append(AlertPublic(**row))
    return out


# `alert.id` is a 32-bit INTEGER on PostgreSQL, which refuses to compare it with a
# larger number (DataError; fuzzing found `GET /api/v1/alerts/2952878389` a 500).
ALERT_ID_MAX = 2**31 - 1


def get_alert(
    session: Session, *, alert_id: int, target_s: float = DEFAULT_TARGET_S
) -> AlertPublic | None:
    if not 1 <= alert_id <= ALERT_ID_MAX:
        return None
    alert = session.get(Alert, alert_id)
    return None if alert is None else public(session, [alert], target_s=target_s)[0]


def update_alert(
    session: Session,
    *,
    alert_id: int,
    status: str | None = None,
    assignee: str | None = None,
    comment: tuple[str, str] | None = None,
    close: tuple[str | None, str | None] | None = None,
    by: str | None = None,
    target_s: float = DEFAULT_TARGET_S,
) -> AlertPublic | None:
    """Apply one workflow step to one case (`update_cases`); None if there is none."""
    if not 1 <= alert_id <= ALERT_ID_MAX:
        return None
    done = update_cases(
        session,
        ids=[alert_id],
        status=status,
        assignee=assignee,
        comment=comment,
        close=close,
        by=by,
        target_s=target_s,
    )
    return done[0] if done else None


def update_cases(
    session: Session,
    *,
    ids: Sequence[int],
    status: str | None = None,
    assignee: str | None = None,
    comment: tuple[str, str] | None = None,
    close: tuple[str | None, str | None] | None = None,
    by: str | None = None,
    target_s: float = DEFAULT_TARGET_S,
) -> list[AlertPublic]:
    """Apply one workflow step to cases, in one transaction; a comment is (author, text),
    `close` is (note, action taken) and sets the status to closed. `by` (else the
    comment's author) is who acted: their first step is the case's first response.
    Concurrent steps queue (`db.writing`) rather than fail. NulInText for text no
    database column holds. The cases found, in id order."""
    note, action = close if close is not None else (None, None)
    no_nul(
        assignee=assignee,
        comment=None if comment is None else comment[1],
        by=by,
        note=note,
        action=action,
    )
    actor = by or (comment[0] if comment is not None else None)
    wanted = sorted({i for i in ids if 1 <= i <= ALERT_ID_MAX})
    if close is not None:
        status = AlertStatus.CLOSED
    with writing(session):
        alerts = (
            list(session.execute(select(Alert).where(A.id.in_(wanted)).order_by(A.id)).scalars())
            if wanted
            else []
        )
        now = time.time()
        for alert in alerts:
            if status is not None and status != alert.status:
                alert.status = status
                if status == AlertStatus.CLOSED:
                    alert.closed_at, alert.closed_by = now, actor
                else:  # reopened or acknowledged again: the close no longer holds
                    alert.closed_at = alert.closed_by = None
            if close is not None:
                alert.close_note, alert.close_action = note, action
            if assignee is not None:
                alert.assignee = assignee
            if comment is not None:
                session.add(
                    AlertComment(alert_id=alert.id, author=comment[0], text=comment[1], at=now)
                )
            if actor is not None and alert.first_response_at is None:
                alert.first_response_at = now
            alert.updated_at = now
            session.add(alert)
        session.commit()
    return public(session, alerts, target_s=target_s)


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
