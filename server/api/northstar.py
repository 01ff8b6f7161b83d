"""`GET /api/v1/northstar` (viewer+, site-scoped): the chosen leading metric per ISO
week with its trend; `PUT /api/v1/northstar` (admin) chooses the metric."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from server.analytics import choices, northstar
from server.api.deps import AdminDep, SessionDep, ViewerDep
from server.api.scope import site_for
from server.schemas import Message

router = APIRouter(prefix="/api/v1", tags=["programme"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site may not"},
    422: {"model": Message, "description": "a bad value"},
}


class WeekOut(BaseModel):
    week: str = Field(examples=["2026-W48"])
    start: float
    value: int
    complete: bool = Field(description="false for the current week, still being counted")
    unprompted: int = Field(
        description="of `value`, the transactions the devices counted and did not prompt"
        " (sampled out, throttled, expired); 0 for `answers`"
    )


class MetricOut(BaseModel):
    id: northstar.Metric
    label: str
    definition: str


class NorthStar(BaseModel):
    metric: MetricOut
    choices: list[MetricOut]
    chosen_by: str | None = Field(description="the admin who chose it; null: the default")
    site: str | None
    weeks: list[WeekOut] = Field(description="oldest first, the current week last")
    change_pct: float | None = Field(
        description="last complete week against the one before, percent"
    )


class MetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: northstar.Metric


def _metric(m: northstar.Metric) -> MetricOut:
    d = northstar.DEFINITIONS[m]
    return MetricOut(id=m, label=d.label, definition=d.definition)


@router.get(
    "/northstar", response_model=NorthStar, responses=ERRORS,
    summary="The north star metric per week, with its trend",
)  # fmt: skip
def get_northstar(
    session: SessionDep,
    caller: ViewerDep,
    site: Annotated[str | None, Query(max_length=64)] = None,
    weeks: Annotated[int, Query(ge=2, le=104)] = 8,
) -> NorthStar:
    row = choices.chosen(session, key=choices.NORTH_STAR)
    metric = northstar.DEFAULT if row is None else northstar.Metric(row.value)
    scope = site_for(caller, site)
    series = northstar.weekly(session, metric, site=scope, weeks=weeks, now=time.time())
    return NorthStar(
        metric=_metric(metric),
        choices=[_metric(m) for m in northstar.Metric],
        chosen_by=None if row is None else row.set_by,
        site=scope,
        weeks=[WeekOut.model_validate(w, from_attributes=True) for w in series],
        change_pct=northstar.change(series),
    )


@router.put(
    "/northstar", response_model=MetricOut, responses=ERRORS,
    summary="Choose the north star metric (admin)",
)  # fmt: skip
def put_northstar(session: SessionDep, caller: AdminDep, body: MetricIn) -> MetricOut:
    choices.choose(
        session, key=choices.NORTH_STAR, value=body.metric.value, by=caller.name, now=time.time()
    )
    return _metric(body.metric)
