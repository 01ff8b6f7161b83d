"""Rollups: feedback counts per time bucket and dimension set, kept at ingest.

A query never scans raw feedback for whole hours: it picks the smallest
cuboid (dimension set) that holds every filter and grouping it needs, reads
whole days from the day table, whole hours from the hour table, and only the
partial hours at the edges of its range from raw feedback (indexed by time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

from contract.nps import Category, Tally
from server.db.sql import quote

DIMS = (
    "site",
    "device",
    "prompt",
    "trigger",
    "fw",
    "reason",
    "rssi_band",
    "battery_band",
    "health",
    "survey",
    "role",
)
RAW_COLUMN = {"trigger": "trigger_kind"}  # a dimension's feedback column, where named apart
COUNTS = ("promoters", "passives", "detractors", "shown")
HOUR = 3600
DAY = 86400
GRAINS = {HOUR: "hour", DAY: "day"}

# Ordered smallest first; the first cuboid that covers a query's dimensions serves it.
# The first dimension leads the primary key (then the bucket) so that filtering on it
# is a range scan.
# Every cuboid but PROGRAMME counts transactional answers only, the default of every
# figure (contract: the headline never mixes the two surveys), so those reads are
# unchanged; the PROGRAMME cuboids count both surveys with the role.
SINGLE = ("rssi_band", "battery_band", "health", "fw", "trigger", "reason")
HEALTH_DIMS = ("device", "site", *DIMS[2:-2])  # all but survey and role
CUBOIDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fleet", ()),
    *((f"by_{d}", (d,)) for d in SINGLE),  # fleet-wide splits: drivers, trends by trigger
    ("site", ("site",)),
    ("device", ("device", "site")),
    ("mix", ("prompt", "trigger", "fw", "rssi_band", "battery_band", "health")),
    ("slice", ("site", "prompt", "trigger", "fw")),
    ("bands", ("site", "prompt", "trigger", "fw", "reason", "rssi_band", "battery_band", "health")),
    ("programme", ("site", "survey", "role")),  # NPS by survey and role, coverage per site
    # The one cuboid keyed by device and the answer's other dimensions: it also serves
    # the transactional figures that need them, filtered on the survey (`choose`).
    ("programme_full", (*HEALTH_DIMS, "survey", "role")),
)
PROGRAMME = frozenset({"programme", "programme_full"})
# A cuboid keyed by device and every other dimension gets a row per answer, whatever
# the grain (a fleet device answers about once an hour): its day table cost ingest as
# much as its hour table and saved reads little, so it has the hour table only.
# Measured on `bench.ingest_batch`'s state: of a batch's 53 ms rollup statement, the
# transactional `full` cuboid (now read from this one) took 15.6 ms, this one's day
# table 8.7 ms (docs/benchmarks.md, "Fewer rollup rows per answer").
HOUR_ONLY = frozenset({"programme_full"})
TRANSACTIONAL = "transactional"
NONE = ""  # stored for a null dimension (reason, role) so it can take part in keys
NULLABLE = ("reason", "role")


# PostgreSQL: a rollup row is updated many times while its hour or day is current.
# Room left on each page lets an update stay on the row's page without a new entry
# in the wide key index (a HOT update). Measured at 200,000 stored, 1,000-event
# batches: HOT updates of the `full` tables 14-19 % at 100, about 70 % at 70;
# WAL per batch 1.36 -> 1.08 MB; the rollup statement 12.9 -> 11.4 ms.
FILLFACTOR = 70
_SLOT: dict[str, int] = {Category.PROMOTER: 0, Category.PASSIVE: 1, Category.DETRACTOR: 2}
Finest = dict[tuple[Any, ...], list[int]]  # (*DIMS values, hour) -> COUNTS
UNDEVICED = tuple(d for d in DIMS if d != "device")
# A Finest row as ingest stages it for `rollup_sql`: (column, SQL type).
STAGE_COLUMNS = (
    *((d, "TEXT") for d in DIMS),
    ("hour", "BIGINT"),
    *((c, "INTEGER") for c in COUNTS),
)


def table_name(cuboid: str, grain: int) -> str:
    return f"rollup_{cuboid}_{GRAINS[grain]}"


def grains_of(cuboid: str) -> tuple[int, ...]:
    """The grains `cuboid` has a table of, finest first."""
    return (HOUR,) if cuboid in HOUR_ONLY else (HOUR, DAY)


def build_tables(metadata: MetaData) -> dict[tuple[str, int], Table]:
    """The rollup tables on `metadata` (the same function the migration calls)."""
    tables = {}
    for name, dims in CUBOIDS:
        for grain in grains_of(name):
            key = [Column(d, String(64), primary_key=True) for d in dims]
            bucket = Column("bucket", BigInteger, primary_key=True, autoincrement=False)
            cols = key[:1] + [bucket] + key[1:]
            counts = [Column(c, Integer, nullable=False, server_default="0") for c in COUNTS]
            tables[(name, grain)] = Table(
                table_name(name, grain), metadata, *cols, *counts,
                postgresql_with={"fillfactor": FILLFACTOR},
            )  # fmt: skip
    return tables


def choose(dims: Iterable[str], *, every_survey: bool = False) -> tuple[str, tuple[str, ...]]:
    """The smallest cuboid holding `dims`: among the PROGRAMME ones with `every_survey`,
    else a transactional-only one, or a PROGRAMME one where none of those holds `dims`
    (which the caller then filters on the survey)."""
    needed = set(dims)
    for name, cdims in CUBOIDS:
        if (name in PROGRAMME or not every_survey) and needed <= set(cdims):
            return name, cdims
    raise ValueError(f"no cuboid covers {sorted(needed)}")


class Fact(NamedTuple):
    """One feedback event as the rollups see it."""

    t: float
    category: str | None  # None: shown, not answered
    dims: tuple[str, ...]  # values in DIMS order


def bucket_of(t: float, grain: int) -> int:
    return int(math.floor(t / grain)) * grain


def finest(facts: Iterable[Fact]) -> Finest:
    """Counts per every dimension and hour: the grain every rollup table is summed from."""
    out: Finest = {}
    for t, cat, dims in facts:
        key = (*dims, math.floor(t / HOUR) * HOUR)
        c = out.get(key)
        if c is None:
            c = out[key] = [0, 0, 0, 0]
        if cat is not None:
            c[_SLOT[cat]] += 1
        c[3] += 1
    return out


@lru_cache(maxsize=256)
def rollup_sql(source: str, name: str, grain: int) -> str:
    """SQL adding `source`'s rows (STAGE_COLUMNS) into one rollup table, in key order.

    The same text on SQLite and PostgreSQL; key order is one lock order for every
    concurrent writer. (A WHERE clause, `true` for the PROGRAMME cuboids, keeps SQLite
    from reading ON CONFLICT as a join.)
    Cached: ingest asks for every rollup table's text on every batch.
    """
    return upsert_sql(
        source, table_name(name, grain), dict(CUBOIDS)[name], grain, every_survey=name in PROGRAMME
    )


def upsert_sql(
    source: str, table_name: str, cuboid_dims: Sequence[str], grain: int, *, every_survey: bool
) -> str:
    """`rollup_sql` for any table keyed by `cuboid_dims` (and the bucket): counting every
    survey or transactional answers only (benchmarks time tables no longer kept with it)."""
    dims = [quote(d) for d in cuboid_dims]
    table = quote(table_name)
    only = "true" if every_survey else f"{quote('survey')} = '{TRANSACTIONAL}'"
    keys = ", ".join([*dims, "hour" if grain == HOUR else f"hour / {DAY} * {DAY}"])
    adds = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in COUNTS)
    return (
        f"INSERT INTO {table} ({', '.join([*dims, 'bucket', *map(quote, COUNTS)])})"
        f" SELECT {keys}, {', '.join(f'SUM({quote(c)})' for c in COUNTS)}"
        f" FROM {source} WHERE {only}"
        f" GROUP BY {keys} ORDER BY {keys}"
        f" ON CONFLICT ({', '.join([*dims, 'bucket'])}) DO UPDATE SET {adds}"
    )


def condensed_sql(source: str) -> str:
    """`source`'s rows (STAGE_COLUMNS) summed over devices: what every cuboid without the
    device adds, from a few dozen rows where a fleet batch stages one per device.

    Ingest's rollup statement reads it once for those (`batch.roll_up`): the batch's
    rollup statement 30.0 -> 23.8 ms of backend CPU (docs/benchmarks.md, "Fewer
    rollup rows per answer").
    """
    keys = ", ".join([*map(quote, UNDEVICED), "hour"])
    sums = ", ".join(f"SUM({quote(c)}) AS {quote(c)}" for c in COUNTS)
    return f"SELECT {keys}, {sums} FROM {source} GROUP BY {keys}"


def reads_condensed(cuboid: str) -> bool:
    """Whether `cuboid`'s statement can read `condensed_sql`'s rows (it has no device)."""
    return "device" not in dict(CUBOIDS)[cuboid]


def aggregate(facts: Sequence[Fact]) -> dict[tuple[str, int], Finest]:
    """Per rollup table, per key (dims in table order + bucket), the count increments.

    What `rollup_sql` adds, computed in Python: the reference the benchmark's and the
    tests' checks compare the stored tables with.
    """
    every = finest(facts)
    at = DIMS.index("survey")
    transactional = {k: c for k, c in every.items() if k[at] == TRANSACTIONAL}
    out: dict[tuple[str, int], Finest] = {}
    for name, dims in CUBOIDS:
        base = every if name in PROGRAMME else transactional
        pick = [DIMS.index(d) for d in dims]
        keys = map(itemgetter(*pick, -1), base) if pick else ((f[-1],) for f in base)
        hours = _sum_into({}, keys, base)
        out[(name, HOUR)] = hours
        if DAY in grains_of(name):
            days = ((*k[:-1], k[-1] // DAY * DAY) for k in hours)
            out[(name, DAY)] = _sum_into({}, days, hours)
    return out


def _sum_into(
    acc: dict[tuple, list[int]], keys: Iterable[tuple], source: dict[tuple, list[int]]
) -> dict[tuple, list[int]]:
    """acc[key] += source[its source key], for keys produced in source's order."""
    for k, counts in zip(keys, source.values(), strict=True):
        c = acc.get(k)
        if c is None:
            acc[k] = counts.copy()
        else:
            for n in range(4):
                c[n] += counts[n]
    return acc


def plan(
    lo: float | None, hi: float | None, grains: Sequence[int]
) -> list[tuple[int | None, float | None, float | None]]:
    """Cover [lo, hi) with whole buckets of the coarsest grain possible; None grain = raw rows."""
    if lo is not None and hi is not None and lo >= hi:
        return []
    if not grains:
        return [(None, lo, hi)]
    g = grains[0]
    a = None if lo is None else math.ceil(lo / g) * g
    b = None if hi is None else math.floor(hi / g) * g
    if a is not None and b is not None and a >= b:
        return plan(lo, hi, grains[1:])
    parts: list[tuple[int | None, float | None, float | None]] = []
    if lo is not None and a is not None and lo < a:
        parts += plan(lo, a, grains[1:])
    parts.append((g, a, b))
    if hi is not None and b is not None and b < hi:
        parts += plan(b, hi, grains[1:])
    return parts


def tally_of(counts: Sequence[int]) -> Tally:
    p, pa, d, s = (int(x or 0) for x in counts)
    return Tally(p, pa, d, s)
