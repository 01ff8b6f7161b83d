"""The programme's stored settings: an admin's choices and an operator's targets.

Each change is a new row (who, when): the rows are the audit trail and the newest
row of a key is the one in force. Keyword-only, no HTTP: the routes ask here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from server.models import ProgrammeChoice, Target
from server.models.programme import TargetBase

BAND_SET = "band_set"
NORTH_STAR = "north_star"


def chosen(session: Session, *, key: str) -> ProgrammeChoice | None:
    """The choice in force for `key`, None when no one chose (the shipped default)."""
    stmt = select(ProgrammeChoice).where(ProgrammeChoice.key == key)  # type: ignore[arg-type]
    stmt = stmt.order_by(ProgrammeChoice.set_at.desc(), ProgrammeChoice.id.desc())  # type: ignore[attr-defined,union-attr]
    return session.execute(stmt.limit(1)).scalars().first()


def choose(session: Session, *, key: str, value: str, by: str, now: float) -> ProgrammeChoice:
    row = ProgrammeChoice(key=key, value=value, set_by=by, set_at=now)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def target_history(
    session: Session, *, site: str | None, survey: str, limit: int = 50
) -> list[Target]:
    """The targets entered for a scope (`site` None: the fleet), newest first."""
    scope = Target.site.is_(None) if site is None else Target.site == site  # type: ignore[union-attr]
    stmt = select(Target).where(scope, Target.survey == survey)  # type: ignore[arg-type]
    stmt = stmt.order_by(Target.set_at.desc(), Target.id.desc()).limit(limit)  # type: ignore[attr-defined,union-attr]
    return list(session.execute(stmt).scalars())


def current_target(session: Session, *, site: str | None, survey: str) -> Target | None:
    """The target in force for a site, else the fleet's; None when none was entered."""
    for scope in [site, None] if site is not None else [None]:
        rows = target_history(session, site=scope, survey=survey, limit=1)
        if rows:
            return rows[0]
    return None


def set_target(session: Session, *, entry: TargetBase, by: str, now: float) -> Target:
    row = Target(**entry.model_dump(), set_by=by, set_at=now)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row
