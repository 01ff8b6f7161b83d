"""`/api/v1/feedback` (newest first, paged) and `/api/v1/export` (streamed CSV or JSON lines)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, select
from sqlmodel import Session

from server.analytics import rollups
from server.analytics.figures import Filters
from server.api.deps import SessionDep, ViewerDep
from server.api.scope import ScopedFiltersDep
from server.db.sql import table_of
from server.models import Feedback
from server.models.events import FeedbackPublic
from server.schemas import FeedbackPage, Message
from server.voice.store import comments_of

router = APIRouter(prefix="/api/v1", tags=["feedback"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    404: {"model": Message, "description": "`before` names no stored feedback"},
    422: {"model": Message, "description": "a bad parameter"},
}
EXPORT_FIELDS = list(FeedbackPublic.model_fields) + [
    "seq", "boot", "up_ms", "time_source", "rx_ts", "telemetry_id", "errors_24h",
    "reboots_24h", "offline_min_24h", "gateway",
]  # fmt: skip
EXPORT_PAGE = 2000
F = table_of(Feedback).c


def matching(f: Filters) -> Select[Any]:
    stmt = select(Feedback)
    for k, v in f.dims().items():
        stmt = stmt.where(F[rollups.RAW_COLUMN.get(k, k)] == v)
    if f.lo is not None:
        stmt = stmt.where(F.t >= f.lo)
    if f.hi is not None:
        stmt = stmt.where(F.t < f.hi)
    return stmt


@router.get(
    "/feedback",
    response_model=FeedbackPage,
    responses=ERRORS,
    summary="Feedback with its joined health, newest first",
)
def list_feedback(
    session: SessionDep,
    caller: ViewerDep,
    f: ScopedFiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        str | None, Query(max_length=96, description="id of the last item of the previous page")
    ] = None,
) -> FeedbackPage:
    stmt = matching(f)
    if before is not None:
        anchor = session.get(Feedback, before)
        if anchor is None or (caller.site is not None and anchor.site != caller.site):
            raise HTTPException(404, f"before: no feedback {before!r}")
        stmt = stmt.where((F.t < anchor.t) | ((F.t == anchor.t) & (F.id < anchor.id)))
    stmt = stmt.order_by(F.t.desc(), F.id.desc()).limit(limit)
    items = [FeedbackPublic.of(r) for r in session.execute(stmt).scalars()]
    return FeedbackPage(items=with_comments(session, items))


def with_comments(session: Session, items: list[FeedbackPublic]) -> list[FeedbackPublic]:
    """The page's items with their phone comments (server/voice/), one query."""
    found = comments_of(session, (i.id for i in items))
    for item in items:
        if (c := found.get(item.id)) is not None:
            item.comment, item.contact = c.text, c.contact
    return items


def _export_rows(engine: Any, f: Filters) -> Iterator[dict[str, Any]]:
    """Every matching row, oldest first, read in keyset pages (constant memory)."""
    last: tuple[float, str] | None = None
    with Session(engine) as session:
        while True:
            stmt = matching(f)
            if last is not None:
                stmt = stmt.where((F.t > last[0]) | ((F.t == last[0]) & (F.id > last[1])))
            page = session.execute(stmt.order_by(F.t, F.id).limit(EXPORT_PAGE)).scalars().all()
            voices = comments_of(session, (row.id for row in page))
            for row in page:
                data = row.model_dump()
                if (c := voices.get(row.id)) is not None:
                    data |= {"comment": c.text, "contact": c.contact}
                yield {k: (row.t if k == "ts" else data.get(k)) for k in EXPORT_FIELDS}
            if len(page) < EXPORT_PAGE:
                return
            last = (page[-1].t, page[-1].id)


def iso_utc(t: float | None) -> str | None:
    """ISO 8601 in UTC, milliseconds when there are any: `2026-11-18T11:06:40.250Z`."""
    if t is None:
        return None
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    text = d.isoformat(timespec="milliseconds" if d.microsecond else "seconds")
    return text.replace("+00:00", "Z")


# CSV opens in spreadsheets: ISO 8601 UTC times first; unix seconds kept in `ts`, `rx_ts`.
CSV_FIELDS = ["time", "rx_time", *EXPORT_FIELDS]


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for i, row in enumerate(rows, 1):
        writer.writerow({"time": iso_utc(row["ts"]), "rx_time": iso_utc(row["rx_ts"]), **row})
        if i % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row) + "\n"


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    summary="Every matching feedback event with its joined health, streamed",
)
def export(
    request: Request,
    caller: ViewerDep,
    f: ScopedFiltersDep,
    format: Annotated[
        Literal["csv", "json"], Query(description="csv with a header, or JSON lines")
    ] = "csv",
) -> StreamingResponse:
    rows = _export_rows(request.app.state.engine, f)
    if format == "csv":
        return StreamingResponse(
            _csv(rows), media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="nps-feedback.csv"'},
        )  # fmt: skip
    return StreamingResponse(
        _jsonl(rows), media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="nps-feedback.jsonl"'},
    )  # fmt: skip
