"""`/api/v1/alerts`: the close-the-loop workflow (viewers read, operators act), and the
webhook delivery log (admin: webhook URLs often hold a secret). A site-limited person
sees and works only that site's alerts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from server.alerts.cases import deliveries, get_alert, list_alerts, update_alert
from server.api.deps import AdminDep, Caller, OperatorDep, SessionDep, ViewerDep
from server.api.scope import check_site, site_for
from server.models.alerts import AlertKind, AlertPublic, AlertStatus
from server.realtime.bus import Bus
from server.schemas import AlertList, DeliveryLog, Message

router = APIRouter(prefix="/api/v1", tags=["alerts"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site does not allow this"},
    404: {"model": Message, "description": "no such alert"},
    422: {"model": Message, "description": "a bad parameter or body"},
}
AlertId = Annotated[int, Path(ge=1, le=2**62, examples=[1])]


class Assign(BaseModel):
    assignee: str = Field(min_length=1, max_length=128, examples=["alice"])


class Comment(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["Called the store manager."])


class Close(BaseModel):
    note: str | None = Field(default=None, max_length=4000, examples=["Door sensor replaced."])


def _found(alert: AlertPublic | None, alert_id: int) -> AlertPublic:
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return alert


def _visible(session: Session, caller: Caller, alert_id: int) -> AlertPublic:
    """The alert if `caller` may see it: 404 when there is none, 403 for another site's."""
    alert = _found(get_alert(session, alert_id=alert_id), alert_id)
    check_site(caller, alert.site, f"alert {alert_id} (site {alert.site})")
    return alert


def _tell(request: Request, alert: AlertPublic) -> AlertPublic:
    bus: Bus = request.app.state.events
    bus.publish("alert", alert.model_dump())
    return alert


@router.get(
    "/alerts",
    response_model=AlertList,
    responses=ERRORS,
    summary="Alerts, newest first, with counts per status",
)
def alerts(
    session: SessionDep,
    caller: ViewerDep,
    status: AlertStatus | Literal["all"] = AlertStatus.OPEN,
    kind: AlertKind | None = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertList:
    return list_alerts(session, status=status, kind=kind, site=site_for(caller, site), limit=limit)


@router.get("/alerts/{alert_id}", response_model=AlertPublic, responses=ERRORS, summary="One alert")
def alert(alert_id: AlertId, session: SessionDep, caller: ViewerDep) -> AlertPublic:
    return _visible(session, caller, alert_id)


@router.post("/alerts/{alert_id}/ack", response_model=AlertPublic, responses=ERRORS)
def ack(
    alert_id: AlertId, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    _visible(session, caller, alert_id)
    out = update_alert(session, alert_id=alert_id, status=AlertStatus.ACKNOWLEDGED)
    return _tell(request, _found(out, alert_id))


@router.post("/alerts/{alert_id}/assign", response_model=AlertPublic, responses=ERRORS)
def assign(
    alert_id: AlertId, body: Assign, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    _visible(session, caller, alert_id)
    out = update_alert(session, alert_id=alert_id, assignee=body.assignee)
    return _tell(request, _found(out, alert_id))


@router.post("/alerts/{alert_id}/comment", response_model=AlertPublic, responses=ERRORS)
def comment(
    alert_id: AlertId, body: Comment, request: Request, session: SessionDep, caller: OperatorDep
) -> AlertPublic:
    _visible(session, caller, alert_id)
    out = update_alert(session, alert_id=alert_id, comment=(caller.name, body.text))
    return _tell(request, _found(out, alert_id))


@router.post("/alerts/{alert_id}/close", response_model=AlertPublic, responses=ERRORS)
def close(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    caller: OperatorDep,
    body: Close | None = None,
) -> AlertPublic:
    _visible(session, caller, alert_id)
    note = body.note if body is not None else None
    out = update_alert(
        session, alert_id=alert_id, status=AlertStatus.CLOSED,
        comment=(caller.name, note) if note else None,
    )  # fmt: skip
    return _tell(request, _found(out, alert_id))


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
