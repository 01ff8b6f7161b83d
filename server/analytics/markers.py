"""Markers for the time charts and the before/after comparison one click away.

Release markers are derived, not recorded: a firmware version's first hour in the
rollups (`slice`: site and fw; `by_fw` for the fleet) at a site, or across the
fleet; a version there from the site's (fleet's) first hour is no release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlmodel import Session

from contract.nps import Tally, compare
from server.analytics.figures import Filters, figures
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.analytics.rollups import DAY, HOUR
from server.db.sql import table_of
from server.models.markers import Marker, MarkerKind, MarkerPublic


def first_seen(pairs: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    """Each fw's first hour, from (site, fw, first hour) rows; versions present from the
    very first hour are left out (they were installed before the data began)."""
    rows = list(pairs)
    if not rows:
        return {}
    start = min(t for _, _, t in rows)
    out: dict[str, float] = {}
    for _, fw, t in rows:
        out[fw] = min(out.get(fw, t), t)
    return {fw: t for fw, t in out.items() if t > start}


def releases(session: Session, *, site: str | None) -> list[MarkerPublic]:
    """Release markers of one site (or of the fleet, `site` None), oldest first.

    Each version's first day comes from a day rollup, then its first hour from the
    hour rollup within that day: a few small index ranges, not every hour of the
    site's history (at 1 M answers the hour table's 712,000 rows took 1.9 s). The
    fleet's first hours are the `by_fw` ones: the least over sites of each site's.
    """
    name = "by_fw" if site is None else "slice"
    day, hour = ROLLUP_TABLES[(name, DAY)].c, ROLLUP_TABLES[(name, HOUR)].c
    firsts = select(day.fw, func.min(day.bucket)).group_by(day.fw)
    if site is not None:
        firsts = firsts.where(day.site == site)
    rows = []
    for fw, first_day in session.execute(firsts).all():
        if not fw:
            continue
        within = select(func.min(hour.bucket)).where(
            hour.fw == fw, hour.bucket >= first_day, hour.bucket < first_day + DAY
        )
        if site is not None:
            within = within.where(hour.site == site)
        rows.append((site or "", fw, float(session.execute(within).scalar_one())))
    return [
        MarkerPublic(
            id=None,
            kind=MarkerKind.RELEASE,
            at=t,
            site=site,
            fw=fw,
            title=f"firmware {fw} first seen" + (f" at {site}" if site else ""),
        )  # fmt: skip
        for fw, t in sorted(first_seen(rows).items(), key=lambda kv: kv[1])
    ]


def events(session: Session, *, site: str | None) -> list[MarkerPublic]:
    """Recorded markers: the site's and the fleet-wide ones (all of them with no site)."""
    M = table_of(Marker).c
    stmt = select(Marker).order_by(M.at, M.id)
    if site is not None:
        stmt = stmt.where((M.site == site) | M.site.is_(None))
    return [
        MarkerPublic(kind=MarkerKind.EVENT, **m.model_dump(exclude={"created_at"}))
        for m in session.execute(stmt).scalars()
    ]


def markers(session: Session, f: Filters) -> list[MarkerPublic]:
    """Releases and recorded events in [f.lo, f.hi), oldest first."""
    out = releases(session, site=f.site) + events(session, site=f.site)
    out = [m for m in out if (f.lo is None or m.at >= f.lo) and (f.hi is None or m.at < f.hi)]
    return sorted(out, key=lambda m: (m.at, m.kind, m.id or 0))


@dataclasses.dataclass(frozen=True)
class Change:
    """NPS in the window before `at` against the window after (each `window_s` long)."""

    before: Tally
    after: Tally
    diff: float | None
    p: float | None
    significant: bool


def before_after(session: Session, f: Filters, *, at: float, window_s: float) -> Change:
    before, _ = figures(session, dataclasses.replace(f, lo=at - window_s, hi=at))
    after, _ = figures(session, dataclasses.replace(f, lo=at, hi=at + window_s))
    c = compare(after, before)
    return Change(before, after, c.diff, c.p, c.significant)
