"""`GET /api/v1/nps` (contract) and the analytics built on it: heat map, filters
(the drivers view is server/api/drivers.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlmodel import Session

from contract.nps import Tally
from server.analytics.figures import Filters, GroupBy, figures, sort_groups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.analytics.rollups import DAY, TRANSACTIONAL
from server.api.deps import SessionDep, ViewerDep
from server.api.scope import ScopedFiltersDep
from server.models import Device
from server.schemas import (
    Cell,
    Figures,
    FilterValues,
    Group,
    Heatmap,
    Message,
    NpsAnswer,
)

router = APIRouter(prefix="/api/v1", tags=["analytics"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    422: {"model": Message, "description": "a bad parameter"},
}


def answer(session: SessionDep, f: Filters, group_by: str | None) -> NpsAnswer:
    total, tallies = figures(session, f, group_by)
    if group_by == "survey" and f.survey is None:
        # Split by survey, both kinds are shown side by side; the headline stays the
        # transactional one (contract): the two are never added together.
        total = tallies.get(TRANSACTIONAL, Tally())
    groups = []
    if group_by is not None:
        groups = [
            Group(key=k, **Figures.of(t).model_dump()) for k, t in sort_groups(group_by, tallies)
        ]
    return NpsAnswer(**Figures.of(total).model_dump(), groups=groups)


@router.get(
    "/nps", response_model=NpsAnswer, responses=ERRORS, summary="NPS with its 95 % interval"
)
def get_nps(
    session: SessionDep,
    caller: ViewerDep,
    f: ScopedFiltersDep,
    group_by: Annotated[GroupBy | None, Query(description="split the figures by this")] = None,
) -> NpsAnswer:
    """Each event counts once, at its time; `hour`, `day` and `week` keys are UTC
    (`2026-11-01T13:00Z`, `2026-11-01`, `2026-W44`), `weekday` keys `mon`..`sun`.
    Without `survey` only transactional answers count; `group_by=survey` shows both
    kinds as groups, the total staying the transactional figure; a `role` key is null
    for answers whose role is unknown."""
    return answer(session, f, group_by)


@router.get(
    "/heatmap",
    response_model=Heatmap,
    responses=ERRORS,
    summary="NPS by weekday and hour of day (UTC)",
)
def heatmap(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> Heatmap:
    _, tallies = figures(session, f, "heat")
    cells = []
    for wd in range(7):
        for hour in range(24):
            s = Figures.of(tallies.get((wd, hour), Tally()))
            cells.append(Cell(weekday=wd, hour=hour, n=s.n, nps=s.nps, shown=s.shown))
    return Heatmap(cells=cells)


@router.get(
    "/filters",
    response_model=FilterValues,
    responses=ERRORS,
    summary="Values for the filter pickers",
)
def filter_values(session: SessionDep, caller: ViewerDep) -> FilterValues:
    """Only the caller's site's values when it is limited to one."""
    site = caller.site

    def values(col: Any, site_col: Any) -> list[str]:
        stmt = select(col).distinct()
        if site is not None:
            stmt = stmt.where(site_col == site)
        return sorted(v for (v,) in session.execute(stmt) if v is not None)

    if site is not None:  # `slice` leads with the site: one index range
        roll = ROLLUP_TABLES[("slice", DAY)].c
        fw, triggers = values(roll.fw, roll.site), values(roll.trigger, roll.site)
        prompts = values(roll.prompt, roll.site)
    else:  # small rollups, each led by the value wanted: no scan of raw feedback
        fw = values(ROLLUP_TABLES[("by_fw", DAY)].c.fw, None)
        triggers = values(ROLLUP_TABLES[("by_trigger", DAY)].c.trigger, None)
        prompts = leading_values(session, ROLLUP_TABLES[("mix", DAY)].c.prompt)
    return FilterValues(
        sites=values(Device.site, Device.site),
        fw=fw,
        triggers=triggers,
        devices=values(Device.id, Device.site),
        prompts=prompts,
    )


def leading_values(session: Session, col: Any) -> list[str]:
    """The distinct values of the first column of a table's key, one index seek each
    (a loose index scan) instead of reading every row: prompts are few, rows many."""
    out: list[str] = []
    stmt = select(func.min(col))
    while (v := session.execute(stmt).scalar()) is not None:
        out.append(v)
        stmt = select(func.min(col)).where(col > v)
    return out
