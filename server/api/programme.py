"""The NPS programme's routes in one router: band sets and targets, coverage by role,
the north star (issue 15; docs/programme.md), and `GET /api/v1/programme`, all the
overview's programme panels need in one aggregated call."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.analytics.coverage import quarter_start
from server.api import benchmarks, coverage, northstar
from server.api.benchmarks import BandSets, Standing
from server.api.coverage import Coverage
from server.api.deps import SessionDep, ViewerDep
from server.api.northstar import NorthStar
from server.api.nps import answer
from server.api.scope import ScopedFiltersDep
from server.schemas import Message, NpsAnswer

router = APIRouter()
for _module in (benchmarks, coverage, northstar):
    router.include_router(_module.router)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    422: {"model": Message, "description": "a bad parameter"},
}


class Programme(BaseModel):
    bands: BandSets
    standing: Standing = Field(description="as GET /api/v1/targets for the filters")
    roles: NpsAnswer = Field(description="transactional NPS of the filters, by role")
    relationship: NpsAnswer = Field(
        description="relationship NPS this quarter (the filters' site etc.), by role"
    )
    northstar: NorthStar = Field(description="as GET /api/v1/northstar, 8 weeks")
    coverage: Coverage = Field(description="as GET /api/v1/coverage: this quarter")


@router.get(
    "/api/v1/programme", response_model=Programme, responses=ERRORS, tags=["programme"],
    summary="The overview's programme panels in one call",
)  # fmt: skip
def get_programme(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> Programme:
    """Relationship answers are asked quarterly, so their figure covers the current
    calendar quarter (UTC) whatever the range; so does coverage."""
    quarter = dataclasses.replace(f, lo=quarter_start(time.time()), hi=None)
    return Programme(
        bands=benchmarks.get_benchmarks(session, caller),
        standing=benchmarks.get_target(session, caller, f),
        roles=answer(session, f, "role"),
        relationship=answer(session, dataclasses.replace(quarter, survey="relationship"), "role"),
        northstar=northstar.get_northstar(session, caller, site=f.site),
        coverage=coverage.get_coverage(session, caller, dataclasses.replace(f, lo=None, hi=None)),
    )
