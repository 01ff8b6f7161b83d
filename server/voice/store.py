"""Phone comments in the database: record one (once), join the held ones when their
answer arrives, and read them back for the feedback list, the export and the themes.

A comment whose answer has not arrived yet (the device is offline, the gateway has a
backlog) is held, not refused: the link's code proves the device made it, and a
person who scanned the code should not be told to come back later. It is joined when
the answer is ingested (`join_held`), or dropped if that answer turns out older than
the link's time to live.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server.alerts.cases import comment_on_answer
from server.analytics.figures import Filters
from server.analytics.rollups import RAW_COLUMN
from server.analytics.themes import Comment
from server.db.engine import writing
from server.db.listed import dialect_of, listed
from server.db.sql import table_of
from server.models import Feedback, VoiceComment

V = table_of(VoiceComment).c
F = table_of(Feedback).c
AUTHOR = "customer (phone)"


class LinkState(StrEnum):
    OPEN = "open"  # no comment yet, within its time
    USED = "used"
    EXPIRED = "expired"


def event_id(device: str, seq: int) -> str:
    return f"{device}:{seq}"  # the contract's event id


def state(session: Session, *, device: str, seq: int, now: float, ttl_s: float) -> LinkState:
    """Where a (verified) link stands; an answer not arrived yet is still open."""
    eid = event_id(device, seq)
    if session.get(VoiceComment, eid) is not None:
        return LinkState.USED
    answer = session.get(Feedback, eid)
    if answer is not None and now - answer.t > ttl_s:
        return LinkState.EXPIRED
    return LinkState.OPEN


def record(
    session: Session,
    *,
    device: str,
    seq: int,
    text: str,
    contact: str | None,
    sentiment: float,
    now: float,
    ttl_s: float,
) -> tuple[LinkState, VoiceComment | None]:
    """Store the comment of a verified link: (OPEN, row) or (USED | EXPIRED, None).
    Joined at once (alert comment added) when its answer is stored, else held."""
    eid = event_id(device, seq)
    with writing(session):
        found = state(session, device=device, seq=seq, now=now, ttl_s=ttl_s)
        if found is not LinkState.OPEN:
            session.rollback()
            return found, None
        row = VoiceComment(
            event_id=eid, device=device, seq=seq, text=text, contact=contact,
            sentiment=sentiment, received_at=now, held=True,
        )  # fmt: skip
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # a concurrent POST of the same link won
            session.rollback()
            return LinkState.USED, None
    answer = session.get(Feedback, eid)
    if answer is not None:
        _join(session, row, answer)
    return LinkState.OPEN, row


def _join(session: Session, row: VoiceComment, answer: Feedback) -> None:
    """The comment on its answer's alert (if the answer opened or joined one)."""
    row.alert_id = comment_on_answer(
        session, feedback_id=answer.id, device=answer.device, author=AUTHOR, text=_shown(row)
    )
    row.held = False
    with writing(session):
        session.add(row)
        session.commit()


def _shown(row: VoiceComment) -> str:
    return row.text if not row.contact else f"{row.text}\n(contact: {row.contact})"


def join_held(engine: Engine, feedback_ids: Collection[str], *, ttl_s: float) -> dict[str, int]:
    """Join the held comments whose answers are among `feedback_ids` (just ingested):
    {"joined": n, "dropped": n}. One indexed query on the batch's ids when none is held."""
    counts = {"joined": 0, "dropped": 0}
    if not feedback_ids:
        return counts
    with Session(engine) as session:
        # Only this batch's ids: every held comment (a link photographed, its answer not yet
        # arrived) is not read again for each batch.
        # One array parameter on PostgreSQL, not a batch's 800 IN parameters (server/db/listed.py).
        found = _held_of(dialect_of(session))
        wanted = [eid for (eid,) in session.execute(found, {"ids": list(feedback_ids)})]
    if not wanted:
        return counts
    with Session(engine, expire_on_commit=False) as session:
        for eid in wanted:
            row, answer = session.get(VoiceComment, eid), session.get(Feedback, eid)
            if row is None or answer is None or not row.held:
                continue
            if row.received_at - answer.t > ttl_s:
                with writing(session):
                    session.execute(delete(VoiceComment).where(V.event_id == eid))
                    session.commit()
                counts["dropped"] += 1
                continue
            _join(session, row, answer)
            counts["joined"] += 1
    return counts


@cache
def _held_of(dialect: str) -> Any:
    """The held comments of the answers given as `ids`: built once, asked after every batch."""
    return select(V.event_id).where(V.held.is_(True), listed(V.event_id, "ids", dialect))


def comments_of(session: Session, ids: Iterable[str]) -> dict[str, VoiceComment]:
    """The comments of these answers (the feedback list's and the export's page)."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.execute(select(VoiceComment).where(V.event_id.in_(wanted))).scalars()
    return {r.event_id: r for r in rows}


def comments_in(session: Session, f: Filters) -> list[Comment]:
    """The joined comments of the answers `f` selects, with what themes need of each."""
    stmt: Any = select(V.event_id, F.site, F.t, F.category, F.reason, V.text, V.sentiment).join(
        table_of(Feedback), F.id == V.event_id
    )
    for k, v in f.dims().items():
        stmt = stmt.where(F[RAW_COLUMN.get(k, k)] == v)
    if f.lo is not None:
        stmt = stmt.where(F.t >= f.lo)
    if f.hi is not None:
        stmt = stmt.where(F.t < f.hi)
    return [Comment(*row) for row in session.execute(stmt)]


def voice_joins(app: Any, feedback_ids: Collection[str]) -> None:
    """`join_held` for the ingest route, counted in the app's metrics."""
    counts = join_held(app.state.engine, feedback_ids, ttl_s=app.state.settings.voice_ttl_s)
    for result, n in counts.items():
        if n:
            app.state.metrics.voice_comments.labels(result=result).inc(n)
