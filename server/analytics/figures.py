"""NPS figures from the rollups (and raw feedback only for partial edge hours).

One function, `figures`, serves `/nps`, the heat map, the drivers view and the
device list's per-device figures; the property tests check it against a
from-scratch computation over raw events.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import Table, func, select
from sqlmodel import Session

from contract.nps import Category, Tally
from server.analytics import rollups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.db.sql import table_of
from server.models import Feedback

FILTERS = ("site", "device", "fw", "prompt", "trigger", "survey", "role")
TimeGroup = Literal["hour", "day", "week", "weekday"]
DimGroup = Literal[
    "site", "device", "fw", "trigger", "reason", "rssi_band", "battery_band", "health",
    "survey", "role",
]  # fmt: skip
GroupBy = Literal[TimeGroup, DimGroup]  # what `group_by` takes: one list, the API's too
TIME_GROUPS: tuple[str, ...] = get_args(TimeGroup)
DIM_GROUPS: tuple[str, ...] = get_args(DimGroup)
GROUP_BY = TIME_GROUPS + DIM_GROUPS
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Filters:
    lo: float | None = None  # inclusive
    hi: float | None = None  # exclusive
    site: str | None = None
    device: str | None = None
    fw: str | None = None
    prompt: str | None = None
    trigger: str | None = None
    survey: str | None = None  # None: transactional in figures (`counted`), any in lists
    role: str | None = None

    def dims(self) -> dict[str, str]:
        return {k: v for k in FILTERS if (v := getattr(self, k)) is not None}


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def time_key(group: str, t: float) -> Hashable:
    """The group key of a moment for a time grouping (UTC)."""
    d = _utc(t)
    if group == "hour":
        return d.strftime("%Y-%m-%dT%H:00Z")
    if group == "day":
        return d.strftime("%Y-%m-%d")
    if group == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if group == "weekday":
        return WEEKDAYS[d.weekday()]
    if group == "heat":
        return (d.weekday(), d.hour)
    raise ValueError(f"not a time grouping: {group}")


WEEK_HOURS = 168
EPOCH_WEEKDAY = 3  # 1970-01-01, unix time 0, was a Thursday


def heat_key(hour_of_week: int) -> tuple[int, int]:
    """(weekday, hour) of the `hour_of_week`-th hour of a week counted from unix time 0
    (UTC): what `time_key("heat", t)` gives for a time in that hour."""
    return (EPOCH_WEEKDAY + hour_of_week // 24) % 7, hour_of_week % 24


def dim_key(group: str, value: str | None) -> str | None:
    if group in rollups.NULLABLE:
        return None if value in (None, rollups.NONE) else value
    return value


def counted(f: Filters, group: str | None) -> dict[str, str]:
    """The conditions a figure counts under: the filters, with the survey the contract's
    default when none is asked (transactional), every survey when split by survey."""
    where = f.dims()
    if f.survey is None and group != "survey":
        where["survey"] = rollups.TRANSACTIONAL
    return where


def figures(
    session: Session, f: Filters, group: str | None = None
) -> tuple[Tally, dict[Any, Tally]]:
    """The total tally and, with `group`, a tally per group key (their sum)."""
    where = counted(f, group)
    needed = set(where) | ({group} if group in DIM_GROUPS else set())
    # The transactional-only cuboids serve every figure of that survey not split by survey
    # or role (the default survey is in `where`: it alone must not send a figure to the
    # far larger every-survey cuboids; at 1 M answers /nps by trigger took 2.6 s, not 6 ms).
    every = where.get("survey") != rollups.TRANSACTIONAL or "role" in needed or group == "survey"
    name, _dims = rollups.choose(needed if every else needed - {"survey"}, every_survey=every)
    # A PROGRAMME cuboid counts every survey: it keeps the survey filter.
    rolled = dict(where)
    if name not in rollups.PROGRAMME:
        rolled.pop("survey", None)
    wanted = [rollups.HOUR] if group in ("hour", "heat") else [rollups.DAY, rollups.HOUR]
    grains = [g for g in wanted if g in rollups.grains_of(name)]
    groups: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    total = [0, 0, 0, 0]

    def add(key: Any, counts: Any) -> None:
        acc = groups[key] if group is not None else total
        for i, c in enumerate(counts):
            acc[i] += int(c or 0)

    for grain, a, b in rollups.plan(f.lo, f.hi, grains):
        if grain is None:
            _raw(session, where, group, a, b, add)
        else:
            _rolled(session, ROLLUP_TABLES[(name, grain)], rolled, group, a, b, add)
    if group is None:
        return rollups.tally_of(total), {}
    tallies = {k: rollups.tally_of(v) for k, v in groups.items()}
    out = Tally()
    for t in tallies.values():
        out = out + t
    return out, tallies


def _rolled(
    session: Session, table: Table, where: dict[str, str], group: str | None,
    a: float | None, b: float | None, add: Callable[[Any, Any], None],
) -> None:  # fmt: skip
    sums = [func.sum(table.c[c]) for c in rollups.COUNTS]
    if group == "heat":  # summed into the week's 168 hours in SQL, not row by row here
        col = (table.c.bucket // rollups.HOUR) % WEEK_HOURS
    elif group in TIME_GROUPS:
        col = table.c.bucket
    elif group is not None:
        col = table.c[group]
    else:
        col = None
    stmt = select(*([col] if col is not None else []), *sums)
    for k, v in where.items():
        stmt = stmt.where(table.c[k] == v)
    if a is not None:
        stmt = stmt.where(table.c.bucket >= a)
    if b is not None:
        stmt = stmt.where(table.c.bucket < b)
    if col is not None:
        stmt = stmt.group_by(col)
    for row in session.execute(stmt):
        if col is None:
            add(None, row)
        elif group == "heat":
            add(heat_key(int(row[0])), row[1:])
        elif group in TIME_GROUPS:
            assert group is not None
            add(time_key(group, row[0]), row[1:])
        else:
            assert group is not None
            add(dim_key(group, row[0]), row[1:])


def _raw(
    session: Session, where: dict[str, str], group: str | None, a: float | None, b: float | None,
    add: Callable[[Any, Any], None],
) -> None:  # fmt: skip
    T = table_of(Feedback).c
    col: Any = None
    if group in DIM_GROUPS:
        col = T[rollups.RAW_COLUMN.get(group or "", group or "")]
    stmt = select(T.t, T.category, *([col] if col is not None else []))
    for k, v in where.items():
        stmt = stmt.where(T[rollups.RAW_COLUMN.get(k, k)] == v)
    if a is not None:
        stmt = stmt.where(T.t >= a)
    if b is not None:
        stmt = stmt.where(T.t < b)
    for row in session.execute(stmt):
        counts = _one(row[1])
        if group is None:
            add(None, counts)
        elif col is None:
            add(time_key(group, row[0]), counts)
        else:
            add(dim_key(group, row[2]), counts)


_ONE: dict[str, tuple[int, int, int, int]] = {
    Category.PROMOTER: (1, 0, 0, 1),
    Category.PASSIVE: (0, 1, 0, 1),
    Category.DETRACTOR: (0, 0, 1, 1),
}
_UNANSWERED = (0, 0, 0, 1)


def _one(cat: str | None) -> tuple[int, int, int, int]:
    """One prompt's counts (promoters, passives, detractors, shown) by its category."""
    return _UNANSWERED if cat is None else _ONE.get(cat, _UNANSWERED)


def sort_groups(group: str, tallies: dict[Any, Tally]) -> list[tuple[Any, Tally]]:
    if group == "weekday":
        return [(k, tallies[k]) for k in WEEKDAYS if k in tallies]
    return sorted(tallies.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
