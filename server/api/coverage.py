"""`GET /api/v1/coverage` (viewer+, site-scoped): answers per site, role and survey,
and the roles a site has not heard from in the range (default: this quarter)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from contract.protocol import ROLES, SURVEYS
from server.analytics import coverage as cov
from server.api.deps import SessionDep, ViewerDep
from server.api.scope import ScopedFiltersDep
from server.db.sql import table_of
from server.models import Device
from server.schemas import Figures, Message

router = APIRouter(prefix="/api/v1", tags=["programme"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    422: {"model": Message, "description": "a bad parameter"},
}


class CoverageCell(BaseModel):
    site: str
    role: str | None = Field(description="null: answers whose role is unknown")
    answered: int = Field(description="answers of both surveys: who we hear from")
    surveys: dict[str, Figures] = Field(description="per survey, never added into one NPS")


class Coverage(BaseModel):
    start: float | None = Field(description="the range counted: this quarter unless asked")
    end: float | None
    roles: list[str]
    cells: list[CoverageCell]
    missing: list[str] = Field(
        description="sentences: a site with no answers from a role in the range",
        examples=[["store-3 has no answers from technicians in this range"]],
    )


def _plural(role: str) -> str:
    return role.replace("_", " ") + "s"


@router.get(
    "/coverage", response_model=Coverage, responses=ERRORS,
    summary="Answers per site and role: who each site hears from",
)  # fmt: skip
def get_coverage(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> Coverage:
    """Without `from` and `to` the range is the current calendar quarter (UTC). A site-bound
    token sees its own site only. `survey` and `role` filters are ignored: every role and
    both surveys are the point of this view."""
    if f.lo is None and f.hi is None:
        f = dataclasses.replace(f, lo=cov.quarter_start(time.time()))
    d = table_of(Device).c
    stmt = select(d.site).distinct()
    if f.site is not None:
        stmt = stmt.where(d.site == f.site)
    sites = sorted(session.execute(stmt).scalars())
    if f.site is not None and f.site not in sites:
        sites = [f.site]
    cells = cov.coverage(session, f, sites)
    quarter = f.hi is None and f.lo == cov.quarter_start(time.time())
    when = "this quarter" if quarter else "in this range"
    return Coverage(
        start=f.lo,
        end=f.hi,
        roles=list(ROLES),
        cells=[
            CoverageCell(
                site=c.site,
                role=c.role,
                answered=c.answered,
                surveys={s: Figures.of(c.tallies[s]) for s in SURVEYS},
            )  # fmt: skip
            for c in cells
        ],
        missing=[
            f"{c.site} has no answers from {_plural(c.role or '')} {when}"
            for c in cov.missing(cells)
        ],
    )
