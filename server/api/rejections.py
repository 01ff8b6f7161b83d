"""`/api/v1/rejections`: events the server refused (its dead letters), newest first.

With `reason_class=site` these are the events another site's gateway tried to
deliver (server/ingest/binding.py). A site-limited person sees those its own site's
gateways sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlmodel import Session

from server.api.deps import SessionDep, ViewerDep
from server.db.sql import table_of
from server.models import DeadLetter, Token
from server.schemas import Message

router = APIRouter(prefix="/api/v1", tags=["rejections"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    422: {"model": Message, "description": "a bad parameter"},
}
DL = table_of(DeadLetter).c
TOKEN = table_of(Token).c


class Rejection(BaseModel):
    id: int
    gateway: str = Field(examples=["gw-store-12"])
    site: str | None = Field(description="the gateway token's site", examples=["store-12"])
    event_id: str | None = Field(examples=["nps-a1b2c3:42"])
    reason_class: str = Field(examples=["site"])
    error: str = Field(
        examples=["site: device nps-a1b2c3 is registered to site store-3, not store-12"]
    )
    received_at: float


class Rejections(BaseModel):
    count: int = Field(description="all matching rejections, not only those listed")
    items: list[Rejection]


def _gateways_of(site: str) -> Select[Any]:
    return select(TOKEN.name).where(TOKEN.role == "gateway", TOKEN.site == site)


def _sites(session: Session, gateways: set[str]) -> dict[str, str | None]:
    if not gateways:
        return {}
    rows = session.execute(
        select(TOKEN.name, TOKEN.site).where(TOKEN.role == "gateway", TOKEN.name.in_(gateways))
    )
    return {name: site for name, site in rows}


@router.get(
    "/rejections",
    response_model=Rejections,
    responses=ERRORS,
    summary="Refused events, newest first",
)
def rejections(
    session: SessionDep,
    caller: ViewerDep,
    reason_class: Annotated[
        str | None,
        Query(max_length=32, description="only this reason (`site`: crossed sites)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Rejections:
    where = []
    if reason_class is not None:
        where.append(DL.reason_class == reason_class)
    if caller.site is not None:
        where.append(DL.gateway.in_(_gateways_of(caller.site)))
    count = session.execute(select(func.count()).select_from(DeadLetter).where(*where)).scalar()
    rows = (
        session.execute(select(DeadLetter).where(*where).order_by(DL.id.desc()).limit(limit))
        .scalars()
        .all()
    )
    sites = _sites(session, {r.gateway for r in rows})
    items = [
        Rejection(
            id=r.id or 0,
            gateway=r.gateway,
            site=sites.get(r.gateway),
            event_id=r.event_id,
            reason_class=r.reason_class,
            error=r.error[:500],
            received_at=r.received_at,
        )  # fmt: skip
        for r in rows
    ]
    return Rejections(count=count or 0, items=items)
