"""The case inbox: one page of cases under filters (site, kind, owner, age, state),
sorted by urgency (`server.alerts.clock`), newest or oldest, with counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from server.alerts.cases import public
from server.alerts.clock import OVERDUE_STEPS, WEIGHT
from server.db.sql import table_of
from server.models import Alert
from server.models.alerts import AlertStatus, CaseList

A = table_of(Alert).c
UNASSIGNED = "none"  # the `owner` that asks for cases nobody owns
SORTS = ("urgency", "newest", "oldest")
ACTIVE = "active"  # open or acknowledged
OVERDUE = "overdue"


@dataclass(frozen=True)
class CaseFilter:
    """What the inbox shows; `state` is a status, `active`, `overdue` or `all`; ages are
    seconds since the case started (the customer's answer, or the raise)."""

    state: str = AlertStatus.OPEN
    site: str | None = None
    kind: str | None = None
    owner: str | None = None
    min_age_s: float | None = None
    max_age_s: float | None = None


def _start() -> ColumnElement[Any]:
    return func.coalesce(A.started_at, A.created_at)


def overdue_clause(now: float, target_s: float) -> ColumnElement[bool]:
    """`clock.is_overdue` in SQL."""
    return and_(
        A.status == AlertStatus.OPEN, A.first_response_at.is_(None), _start() < now - target_s
    )


def _where(f: CaseFilter, now: float, target_s: float, *, with_state: bool) -> list[Any]:
    where: list[Any] = []
    if f.site is not None:
        where.append(A.site == f.site)
    if f.kind is not None:
        where.append(A.kind == f.kind)
    if f.owner == UNASSIGNED:
        where.append(A.assignee.is_(None))
    elif f.owner is not None:
        where.append(A.assignee == f.owner)
    if f.min_age_s is not None:
        where.append(_start() <= now - f.min_age_s)
    if f.max_age_s is not None:
        where.append(_start() >= now - f.max_age_s)
    if with_state:
        if f.state == ACTIVE:
            where.append(A.status.in_((AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)))
        elif f.state == OVERDUE:
            where.append(overdue_clause(now, target_s))
        elif f.state != "all":
            where.append(A.status == f.state)
    return where


def list_cases(
    session: Session,
    *,
    filters: CaseFilter,
    sort: str = "newest",
    offset: int = 0,
    limit: int = 100,
    now: float,
    target_s: float,
) -> CaseList:
    where = _where(filters, now, target_s, with_state=True)
    overdue = overdue_clause(now, target_s)
    if sort == "urgency":
        weight = case(WEIGHT, value=A.kind, else_=0) + case((overdue, OVERDUE_STEPS), else_=0)
        order: list[Any] = [weight.desc(), _start(), A.id]
    elif sort == "oldest":
        order = [A.id]
    else:
        order = [A.id.desc()]
    page = select(Alert).where(*where).order_by(*order).offset(offset).limit(limit)
    total = session.execute(select(func.count()).select_from(Alert).where(*where)).scalar_one()
    others = _where(filters, now, target_s, with_state=False)
    by_status = select(A.status, func.count()).where(*others).group_by(A.status)
    counts = dict.fromkeys(AlertStatus, 0) | {s: n for s, n in session.execute(by_status)}
    late = select(func.count()).select_from(Alert).where(*others, overdue)
    items = public(session, list(session.execute(page).scalars()), now=now, target_s=target_s)
    overdue_n = session.execute(late).scalar_one()
    return CaseList(
        items=items, counts=counts, overdue=overdue_n, total=total, offset=offset, limit=limit
    )
