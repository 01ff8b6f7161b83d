"""The north star: one leading metric beside NPS, counted per ISO week from what the
devices already send (docs/programme.md says the choices and why).

A north star leads revenue rather than being revenue: it moves first, and a team
can move it. Every metric here is read from the smallest transactional day rollup
holding its dimensions (site, trigger kind, the device's joined health per answer),
so it costs one query and stays exact; weeks are whole UTC days (Monday first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from server.analytics import rollups
from server.analytics.figures import time_key
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.analytics.rollups import DAY
from server.db.sql import table_of
from server.models import UnpromptedDay

WEEK = 7 * DAY
NO_TRANSACTION = "walkup"  # the trigger kind of a prompt no transaction started


class Metric(StrEnum):
    HEALTHY_TRANSACTIONS = "healthy_transactions"
    TRANSACTIONS = "transactions"
    ANSWERS = "answers"


DEFAULT = Metric.HEALTHY_TRANSACTIONS


@dataclass(frozen=True)
class Definition:
    label: str
    definition: str


DEFINITIONS = {
    Metric.HEALTHY_TRANSACTIONS: Definition(
        "Weekly transactions completed on healthy devices",
        "transactions on a device whose health at that moment was `healthy` (no error, at"
        " most one boot, under 10 min offline in the previous 24 h, Wi-Fi and battery not"
        " weak: GET /api/v1/bands): prompts started by a transaction (any trigger kind but"
        " `walkup`), and the transactions the device counted and did not prompt (sampled"
        " out, throttled, expired), by its health at the reading that reported them",
    ),
    Metric.TRANSACTIONS: Definition(
        "Weekly transactions completed",
        "prompts started by a transaction (any trigger kind but `walkup`) and the"
        " transactions the devices counted and did not prompt, whatever the device's health",
    ),
    Metric.ANSWERS: Definition(
        "Weekly transactional answers",
        "transactional prompts answered with a score: the programme's own reach",
    ),
}


@dataclass(frozen=True)
class Week:
    week: str  # ISO week, `2026-W48`
    start: float
    value: int
    complete: bool  # False for the current week, still being counted
    unprompted: int = 0  # of `value`: transactions the devices counted and did not prompt


def week_start(t: float) -> float:
    """Monday 00:00 UTC of `t`'s ISO week."""
    d = dt.datetime.fromtimestamp(t, dt.UTC).date()
    monday = d - dt.timedelta(days=d.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC).timestamp()


def _cuboid(metric: Metric, site: str | None) -> str:
    """The smallest transactional day rollup holding what `metric` counts by: the fleet's
    healthy transactions read `mix`, not `bands`, whose rows a day grow with every
    site and reason code (a site's own read `bands` by its key's leading site)."""
    dims = {"site"} if site is not None else set()
    if metric is not Metric.ANSWERS:
        dims.add("trigger")
    if metric is Metric.HEALTHY_TRANSACTIONS:
        dims.add("health")
    return rollups.choose(dims)[0]


def weekly(
    session: Session, metric: Metric, *, site: str | None, weeks: int, now: float
) -> list[Week]:
    """`weeks` ISO weeks up to and including `now`'s, oldest first, zero where none."""
    end = week_start(now) + WEEK
    start = end - weeks * WEEK
    t = ROLLUP_TABLES[(_cuboid(metric, site), DAY)].c
    counted = t.promoters + t.passives + t.detractors if metric is Metric.ANSWERS else t.shown
    stmt = select(t.bucket, func.sum(counted)).where(t.bucket >= start, t.bucket < end)
    if metric is not Metric.ANSWERS:
        stmt = stmt.where(t.trigger != NO_TRANSACTION)
    per = _by_week(session.execute(_scoped(stmt, t, metric, site).group_by(t.bucket)))
    skipped = {} if metric is Metric.ANSWERS else _unprompted(session, metric, site, start, end)
    starts = [start + i * WEEK for i in range(weeks)]
    return [
        Week(
            str(time_key("week", s)), s, per.get(s, 0) + skipped.get(s, 0),
            complete=s + WEEK <= now, unprompted=skipped.get(s, 0),
        )
        for s in starts
    ]  # fmt: skip


def _unprompted(
    session: Session, metric: Metric, site: str | None, start: float, end: float
) -> dict[float, int]:
    """Per week, the transactions the devices counted and did not prompt
    (`server.ingest.unprompted`); for healthy transactions those reported while healthy."""
    t = table_of(UnpromptedDay).c
    stmt = select(t.bucket, func.sum(t["count"])).where(t.bucket >= start, t.bucket < end)
    return _by_week(session.execute(_scoped(stmt, t, metric, site).group_by(t.bucket)))


def _scoped(stmt: Any, t: Any, metric: Metric, site: str | None) -> Any:
    """`stmt` over table columns `t`, kept to healthy devices' rows for healthy
    transactions and to `site`'s when one is given."""
    if metric is Metric.HEALTHY_TRANSACTIONS:
        stmt = stmt.where(t.health == "healthy")
    if site is not None:
        stmt = stmt.where(t.site == site)
    return stmt


def _by_week(rows: Iterable[Any]) -> dict[float, int]:
    """(day bucket, count) rows summed per week start."""
    per: dict[float, int] = {}
    for bucket, value in rows:
        key = week_start(float(bucket))
        per[key] = per.get(key, 0) + int(value or 0)
    return per


def change(series: list[Week]) -> float | None:
    """The last complete week against the one before, in percent; None without both."""
    done = [w for w in series if w.complete]
    if len(done) < 2 or done[-2].value == 0:
        return None
    return round(100.0 * (done[-1].value - done[-2].value) / done[-2].value, 1)
