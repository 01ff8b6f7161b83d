"""`/api/v1/markers`: events on the time charts (viewers read, operators record and
delete; a site-limited person sees and changes only its site's and reads the fleet-wide
ones), and `/api/v1/compare`: NPS before and after a moment, one click from a marker."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from server.analytics.markers import before_after, markers
from server.api.deps import OperatorDep, SessionDep, ViewerDep, parse_time
from server.api.scope import ScopedFiltersDep, check_site, site_for
from server.models.markers import LATEST, Marker, MarkerCreate, MarkerKind, MarkerPublic
from server.schemas import Figures, Message

router = APIRouter(prefix="/api/v1", tags=["markers"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site does not allow this"},
    404: {"model": Message, "description": "no such marker"},
    422: {"model": Message, "description": "a bad parameter or body"},
}
MarkerId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]  # an INTEGER key
MAX_WINDOW_S = 366 * 86400.0


@router.get(
    "/markers", response_model=list[MarkerPublic], responses=ERRORS,
    summary="Release markers and recorded events in the range, oldest first",
)  # fmt: skip
def list_markers(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> list[MarkerPublic]:
    """With `site`, that site's releases and events plus the fleet-wide events; without,
    the fleet's releases (each version's first hour anywhere) and every event."""
    return markers(session, f)


@router.post(
    "/markers", response_model=MarkerPublic, status_code=201, responses=ERRORS,
    summary="Record a site event (operator)",
)  # fmt: skip
def create_marker(body: MarkerCreate, session: SessionDep, caller: OperatorDep) -> MarkerPublic:
    """A site-limited operator records only for its own site (no site: its site)."""
    site = site_for(caller, body.site)
    row = Marker(
        at=body.at, site=site, title=body.title, note=body.note,
        created_by=caller.name, created_at=time.time(),
    )  # fmt: skip
    session.add(row)
    session.commit()
    session.refresh(row)
    return MarkerPublic(kind=MarkerKind.EVENT, **row.model_dump(exclude={"created_at"}))


@router.delete(
    "/markers/{marker_id}", status_code=204, response_class=Response, responses=ERRORS,
    summary="Delete an event (operator)",
)  # fmt: skip
def delete_marker(marker_id: MarkerId, session: SessionDep, caller: OperatorDep) -> Response:
    """A site-limited operator deletes only its own site's events (not fleet-wide ones)."""
    row = session.get(Marker, marker_id)
    if row is None:
        raise HTTPException(404, f"no marker {marker_id}")
    check_site(caller, row.site, f"marker {marker_id} (site {row.site or 'all'})")
    session.delete(row)
    session.commit()
    return Response(status_code=204)


class Change(BaseModel):
    """NPS in `[at - window_s, at)` against `[at, at + window_s)`; `diff` is after - before,
    tested like the drivers (two-sample z-test, 5 % level, docs/server.md)."""

    at: float
    window_s: float
    before: Figures
    after: Figures
    diff: float | None = Field(description="NPS after - before, points")
    p: float | None
    significant: bool


@router.get(
    "/compare", response_model=Change, responses=ERRORS,
    summary="NPS before and after a moment (a marker's before/after)",
)  # fmt: skip
def compare_windows(
    session: SessionDep,
    caller: ViewerDep,
    f: ScopedFiltersDep,
    at: Annotated[str, Query(description="the moment: ISO 8601 or unix seconds")],
    window_s: Annotated[float, Query(gt=0, le=MAX_WINDOW_S)] = 7 * 86400.0,
) -> Change:
    """The `from`/`to` filters are ignored: the windows are set by `at` and `window_s`."""
    moment = parse_time("at", at)
    if moment is None or not 0 <= moment <= LATEST:
        raise HTTPException(422, "at: out of range")
    c = before_after(session, f, at=moment, window_s=window_s)
    return Change(
        at=moment, window_s=window_s, before=Figures.of(c.before), after=Figures.of(c.after),
        diff=None if c.diff is None else round(c.diff, 2),
        p=None if c.p is None else round(c.p, 5), significant=c.significant,
    )  # fmt: skip
