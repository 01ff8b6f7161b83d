"""The NPS band sets, the active one, and targets with their gap.

`GET /api/v1/benchmarks` (viewer+): the shipped band sets and the one in force, so
the dashboard writes each score's meaning next to it. `PUT /api/v1/benchmarks/active`
(admin) chooses the set. `GET /api/v1/targets` (viewer+, site-scoped) gives the NPS
of the filter with its band, the target and the category's figure and both gaps;
`PUT /api/v1/targets` (operator+; a site-bound token only for its site) enters them;
every entry is kept with who made it (`GET /api/v1/targets/history`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from contract.protocol import SITE_PATTERN, Survey
from server.analytics import benchmarks, choices
from server.analytics.figures import figures
from server.api.deps import AdminDep, OperatorDep, SessionDep, ViewerDep
from server.api.scope import ScopedFiltersDep, site_for
from server.models.programme import Target, TargetBase
from server.schemas import Figures, Message

router = APIRouter(prefix="/api/v1", tags=["programme"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site may not"},
    422: {"model": Message, "description": "a bad value"},
}


class BandOut(BaseModel):
    min: float | None = Field(description="a score at or above this is in the band; null: below")
    label: str = Field(examples=["missing follow-on sales"])
    tone: benchmarks.Tone
    meaning: str = Field(examples=["-15 to 0: customers stay, but follow-on sales are missed"])


class BandSetOut(BaseModel):
    id: str = Field(examples=["enterprise_b2b"])
    name: str
    source: str = Field(description="where the ranges come from, and which are ours")
    bands: list[BandOut] = Field(description="best first")


class BandSets(BaseModel):
    active: str = Field(description="the set every score is read with")
    chosen_by: str | None = Field(description="the admin who chose it; null: shipped default")
    chosen_at: float | None
    sets: list[BandSetOut]


class ActiveSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: str = Field(max_length=64, examples=["enterprise_b2b"])


class TargetIn(TargetBase):
    """What an operator enters for a site (null: the fleet) and survey."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    site: str | None = Field(default=None, pattern=SITE_PATTERN, max_length=64)
    survey: Survey = "transactional"  # type: ignore[assignment]


class TargetOut(TargetBase):
    set_by: str
    set_at: float


class Standing(BaseModel):
    """The filter's NPS read against the active band set, its target and the category."""

    figures: Figures
    band_set: str
    band: BandOut | None = Field(description="the band of the NPS; null without answers")
    target: TargetOut | None = Field(description="in force for the site, else the fleet's")
    gap_to_target: float | None = Field(description="NPS minus target, points")
    gap_to_benchmark: float | None = Field(description="NPS minus the category's figure")


def active_set(session: SessionDep) -> tuple[benchmarks.BandSet, Any]:
    """The band set in force and the choice row (None: the shipped default)."""
    data = benchmarks.shipped()
    row = choices.chosen(session, key=choices.BAND_SET)
    name = row.value if row is not None and row.value in data.sets else data.default
    return data.sets[name], row


def _band(band: benchmarks.Band | None) -> BandOut | None:
    if band is None:
        return None
    return BandOut(min=band.min, label=band.label, tone=band.tone, meaning=band.meaning)


def _sets(session: SessionDep) -> BandSets:
    active, row = active_set(session)
    return BandSets(
        active=active.id,
        chosen_by=None if row is None else row.set_by,
        chosen_at=None if row is None else row.set_at,
        sets=[
            BandSetOut(id=s.id, name=s.name, source=s.source, bands=[_band(b) for b in s.bands])  # type: ignore[misc]
            for s in benchmarks.shipped().sets.values()
        ],
    )


@router.get("/benchmarks", response_model=BandSets, responses=ERRORS, summary="NPS band sets")
def get_benchmarks(session: SessionDep, caller: ViewerDep) -> BandSets:
    return _sets(session)


@router.put(
    "/benchmarks/active", response_model=BandSets, responses=ERRORS,
    summary="Choose the band set every score is read with (admin)",
)  # fmt: skip
def put_active(session: SessionDep, caller: AdminDep, body: ActiveSet) -> BandSets:
    if body.set not in benchmarks.shipped().sets:
        known = ", ".join(benchmarks.shipped().sets)
        raise HTTPException(422, f"set: no band set {body.set[:64]!r} (shipped: {known})")
    choices.choose(session, key=choices.BAND_SET, value=body.set, by=caller.name, now=time.time())
    return _sets(session)


def _target_out(row: Target | None) -> TargetOut | None:
    return None if row is None else TargetOut.model_validate(row, from_attributes=True)


@router.get(
    "/targets", response_model=Standing, responses=ERRORS,
    summary="The filter's NPS with its band, target, category figure and gaps",
)  # fmt: skip
def get_target(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> Standing:
    survey = f.survey or "transactional"
    total, _ = figures(session, f)
    block = Figures.of(total)
    active, _row = active_set(session)
    target = choices.current_target(session, site=f.site, survey=survey)
    return Standing(
        figures=block,
        band_set=active.id,
        band=_band(active.of(block.nps)),
        target=_target_out(target),
        gap_to_target=benchmarks.gap(block.nps, None if target is None else target.target),
        gap_to_benchmark=benchmarks.gap(block.nps, None if target is None else target.benchmark),
    )


@router.put(
    "/targets", response_model=TargetOut, responses=ERRORS,
    summary="Enter a target and the category's figure (operator)",
)  # fmt: skip
def put_target(session: SessionDep, caller: OperatorDep, body: TargetIn) -> TargetOut:
    if caller.site is not None and body.site != caller.site:
        raise HTTPException(
            403, f"{caller.name} is limited to site {caller.site}: site {body.site!r} is not"
        )
    row = choices.set_target(session, entry=body, by=caller.name, now=time.time())
    out = _target_out(row)
    assert out is not None
    return out


@router.get(
    "/targets/history", response_model=list[TargetOut], responses=ERRORS,
    summary="Every target entered for a scope, newest first: who and when",
)  # fmt: skip
def target_history(
    session: SessionDep,
    caller: ViewerDep,
    site: Annotated[str | None, Query(max_length=64)] = None,
    survey: Survey = "transactional",
) -> list[TargetOut]:
    rows = choices.target_history(session, site=site_for(caller, site), survey=survey)
    return [TargetOut.model_validate(r, from_attributes=True) for r in rows]
