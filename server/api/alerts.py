"""`/api/v1/alerts`: the case inbox and its workflow (viewers read, operators act, one
case or many at once), the "what did we change" report, routing rules (admins), and
the webhook delivery log (admin: webhook URLs often hold a secret). A site-limited
person sees and works only that site's cases."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from server.alerts.cases import deliveries, get_alert, update_cases
from server.alerts.inbox import CaseFilter, list_cases
from server.alerts.notify import CaseNotifier
from server.alerts.report import ChangeReport, changes
from server.alerts.routing import add_rule, delete_rule, list_rules
from server.api.deps import (
    AdminDep,
    Caller,
    OperatorDep,
    SessionDep,
    SettingsDep,
    ViewerDep,
    parse_time,
)
from server.api.scope import check_site, site_for
from server.db.engine import writing
from server.db.sql import table_of
from server.models import Alert, RoutingRule
from server.models.alerts import AlertKind, AlertPublic, AlertStatus, CaseList
from server.realtime.bus import Bus
from server.schemas import DeliveryLog, Message
from server.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["alerts"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site does not allow this"},
    404: {"model": Message, "description": "no such case"},
    422: {"model": Message, "description": "a bad parameter or body"},
}
A = table_of(Alert).c
AlertId = Annotated[int, Path(ge=1, le=2**62, examples=[1])]
BULK_MAX = 500
Owner = Annotated[str, Field(min_length=1, max_length=128, examples=["maria@example.com"])]
Note = Annotated[str | None, Field(default=None, max_length=4000, examples=["Door replaced."])]
Action = Annotated[
    str | None,
    Field(
        default=None,
        max_length=200,
        examples=["replaced the door sensor"],
        description="what was changed, reported by GET /alerts/report",
    ),
]


class Assign(BaseModel):
    assignee: Owner


class Comment(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["Called the store manager."])


class Close(BaseModel):
    note: Note = None
    action: Action = None


class Bulk(BaseModel):
    """One step on many cases: all of them are the caller's to work, or none is changed."""

    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=BULK_MAX)
    action: Literal["ack", "assign", "close", "reopen"]
    assignee: Owner | None = None
    note: Note = None
    action_taken: Action = None


class Rule(BaseModel):
    site: str | None = Field(default=None, max_length=64, examples=["store-3"])
    kind: AlertKind | None = None
    assignee: Owner


class RulePublic(BaseModel):
    id: int
    site: str | None
    kind: str | None
    assignee: str
    created_at: float


def _target_s(settings: Settings) -> float:
    return settings.response_target_min * 60


def _visible(session: Session, caller: Caller, ids: list[int]) -> None:
    """404 unless every case exists, 403 if any is another site's (nothing is changed)."""
    rows = session.execute(select(A.id, A.site).where(A.id.in_(ids)))
    found: dict[int, str | None] = {i: site for i, site in rows}
    missing = sorted(set(ids) - set(found))
    if missing:
        raise HTTPException(404, f"no case {', '.join(map(str, missing[:10]))}")
    for i in sorted(found):
        check_site(caller, found[i], f"case {i} (site {found[i]})")


def _step(
    request: Request,
    session: Session,
    caller: Caller,
    ids: list[int],
    event: str,
    **change: Any,
) -> list[AlertPublic]:
    """Check, apply, then tell: the stream, the webhooks and the e-mail subscribers."""
    wanted = [i for i in ids if i <= 2**31 - 1]
    if len(wanted) < len(ids):
        raise HTTPException(404, f"no case {max(ids)}")
    _visible(session, caller, wanted)
    settings: Settings = request.app.state.settings
    done = update_cases(session, ids=wanted, by=caller.name, target_s=_target_s(settings), **change)
    bus: Bus = request.app.state.events
    notifier: CaseNotifier = request.app.state.notifier
    dumped = [c.model_dump() for c in done]
    for case in dumped:
        bus.publish("alert", case)
    notifier.changed(dumped, event, caller.name)
    return done


@router.get(
    "/alerts",
    response_model=CaseList,
    responses=ERRORS,
    summary="Cases, a page at a time, with counts per status and overdue",
)
def alerts(
    session: SessionDep,
    caller: ViewerDep,
    settings: SettingsDep,
    status: Annotated[
        AlertStatus | Literal["active", "overdue", "all"],
        Query(description="a status; active: open or acknowledged; overdue: past the target"),
    ] = AlertStatus.OPEN,
    kind: AlertKind | None = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=128, description="'none': unowned")] = None,
    min_age_h: Annotated[float | None, Query(ge=0, le=1e5)] = None,
    max_age_h: Annotated[float | None, Query(ge=0, le=1e5)] = None,
    sort: Annotated[Literal["urgency", "newest", "oldest"], Query()] = "newest",
    offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CaseList:
    f = CaseFilter(
        state=status,
        site=site_for(caller, site),
        kind=kind,
        owner=owner,
        min_age_s=None if min_age_h is None else min_age_h * 3600,
        max_age_s=None if max_age_h is None else max_age_h * 3600,
    )
    return list_cases(
        session,
        filters=f,
        sort=sort,
        offset=offset,
        limit=limit,
        now=time.time(),
        target_s=_target_s(settings),
    )


@router.get(
    "/alerts/report",
    response_model=ChangeReport,
    responses=ERRORS,
    summary="What did we change: closed cases with their action, note and times",
)
def report(
    session: SessionDep,
    caller: ViewerDep,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
) -> ChangeReport:
    return changes(
        session, lo=parse_time("from", from_), hi=parse_time("to", to), site=site_for(caller, site)
    )


@router.post(
    "/alerts/bulk",
    response_model=list[AlertPublic],
    responses=ERRORS,
    summary="Acknowledge, assign, close or reopen many cases at once",
)
def bulk(body: Bulk, request: Request, session: SessionDep, caller: OperatorDep) -> Any:
    ids = sorted(set(body.ids))
    if body.action == "assign":
        if body.assignee is None:
            raise HTTPException(422, "assign needs an assignee")
        return _step(request, session, caller, ids, "assigned", assignee=body.assignee)
    if body.action == "close":
        return _step(request, session, caller, ids, "closed", close=(body.note, body.action_taken))
    status = AlertStatus.ACKNOWLEDGED if body.action == "ack" else AlertStatus.OPEN
    event = "acknowledged" if body.action == "ack" else "reopened"
    return _step(request, session, caller, ids, event, status=status)


@router.get("/alerts/{alert_id}", response_model=AlertPublic, responses=ERRORS, summary="One case")
def alert(
    alert_id: AlertId, session: SessionDep, caller: ViewerDep, settings: SettingsDep
) -> AlertPublic:
    found = get_alert(session, alert_id=alert_id, target_s=_target_s(settings))
    if found is None:
        raise HTTPException(404, f"no case {alert_id}")
    check_site(caller, found.site, f"case {alert_id} (site {found.site})")
    return found


@router.post("/alerts/{alert_id}/ack", response_model=AlertPublic, responses=ERRORS)
def ack(
    alert_id: AlertId, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    return _step(
        request, session, caller, [alert_id], "acknowledged", status=AlertStatus.ACKNOWLEDGED
    )[0]


@router.post("/alerts/{alert_id}/assign", response_model=AlertPublic, responses=ERRORS)
def assign(
    alert_id: AlertId, body: Assign, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    return _step(request, session, caller, [alert_id], "assigned", assignee=body.assignee)[0]


@router.post("/alerts/{alert_id}/comment", response_model=AlertPublic, responses=ERRORS)
def comment(
    alert_id: AlertId, body: Comment, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    return _step(
        request, session, caller, [alert_id], "commented", comment=(caller.name, body.text)
    )[0]


@router.post("/alerts/{alert_id}/close", response_model=AlertPublic, responses=ERRORS)
def close(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    caller: OperatorDep,
    body: Close | None = None,
) -> AlertPublic:
    """The note and the action taken are stored on the case (not as comments)."""
    note, action = (body.note, body.action) if body is not None else (None, None)
    return _step(request, session, caller, [alert_id], "closed", close=(note, action))[0]


@router.get(
    "/routing",
    response_model=list[RulePublic],
    responses=ERRORS,
    summary="Routing rules: who new cases of a site and kind go to",
)
def rules(session: SessionDep, caller: ViewerDep) -> Any:
    return [r for r in list_rules(session) if caller.site is None or r.site == caller.site]


@router.post("/routing", response_model=RulePublic, responses=ERRORS, summary="Add a rule")
def new_rule(body: Rule, session: SessionDep, caller: AdminDep) -> Any:
    check_site(caller, body.site, f"a rule for {body.site or 'every site'}")
    with writing(session):
        return add_rule(session, assignee=body.assignee, site=body.site, kind=body.kind)


@router.delete("/routing/{rule_id}", response_model=Message, responses=ERRORS)
def drop_rule(
    rule_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep, caller: AdminDep
) -> Message:
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise HTTPException(404, f"no rule {rule_id}")
    check_site(caller, rule.site, f"rule {rule_id}")
    with writing(session):
        delete_rule(session, rule_id=rule_id)
    return Message(detail=f"rule {rule_id} deleted")


@router.get(
    "/webhooks/deliveries",
    response_model=DeliveryLog,
    responses=ERRORS,
    summary="Webhook delivery attempts, newest first",
)
def webhook_deliveries(
    session: SessionDep, caller: AdminDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DeliveryLog:
    """Fleet-wide: a site-limited admin is refused."""
    check_site(caller, None, "the fleet-wide delivery log")
    return deliveries(session, limit=limit)
