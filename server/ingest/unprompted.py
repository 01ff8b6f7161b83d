"""Host transactions the devices did not prompt: their sampling counters, counted per day.

A device counts, per boot, the host transactions it did not prompt and why
(firmware/device/sampling.py: `sampled_out` by the 1-in-k sampling, `throttled` by the
person window, `expired` asked too late) and sends the totals in every reading
(`sampling`). The north star counts transactions, not prompts, so ingest turns the
totals into counts:

- per (device, boot, reason), the highest total stored so far (`boot_sampling`);
- a reading adds what it raises that total by, on the reading's UTC day, with its site
  and the device's health at the reading (the health join's state, as an answer at
  that moment gets it), to `unprompted_day`.

Totals only grow within a boot, so in whatever order the readings arrive a boot counts
its highest total delivered: a reading delivered after a later one adds nothing, and
the increment lies on the later one's day. What a boot skipped after its last
delivered reading is not counted (the counters live in the device's RAM).

Who reaches it: the counters come from the device through its site's gateway (the
gateway token's site binding, `server.ingest.binding`). A boot cannot skip more than
one transaction a second of its uptime (`up_ms`): a reading whose total says more is
stored, its counters are not counted, and `nps_edge_unprompted_ignored_total` counts
it. Names other than the three are kept in the reading and not counted.

Two batches of one device run in turn here: this runs after the batch's device rows
are written, whose row locks (PostgreSQL) the other batch waits on, and a statement
after that wait sees what the first committed; SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlmodel import Session

from server.analytics.rollups import DAY, bucket_of
from server.db.listed import dialect_of, listed
from server.db.sql import greater, table_of, upsert
from server.models import BootSampling, UnpromptedDay

REASONS = ("sampled_out", "throttled", "expired")  # firmware/device/sampling.py
SEEN = table_of(BootSampling)
DAYS = table_of(UnpromptedDay)


class Reading(NamedTuple):
    """A stored reading with counters, as this module counts it."""

    device: str
    boot: int
    up_ms: int
    site: str
    t: float
    health: str
    totals: dict[str, int]  # the known reasons' totals since boot


class Counted(NamedTuple):
    seen: list[dict[str, Any]]  # boot_sampling rows: the new high marks
    days: list[dict[str, Any]]  # unprompted_day rows: the increments


def totals_of(sampling: Mapping[str, int] | None) -> dict[str, int]:
    """The known reasons' totals of a reading's counters; empty when none is above 0."""
    if not sampling:
        return {}
    return {r: n for r in REASONS if (n := sampling.get(r, 0)) > 0}


def plausible(reading: Reading) -> bool:
    """At most one skipped transaction a second of the boot's uptime (and one more)."""
    return sum(reading.totals.values()) <= reading.up_ms // 1000 + 1


def count(readings: Sequence[Reading], stored: Mapping[tuple[str, int, str], int]) -> Counted:
    """The increments `readings` make over the `stored` high marks (pure).

    Readings are taken in each boot's order (`up_ms`), so a batch holding several
    readings of one boot puts each increment on the day of the reading that made it.
    """
    high = dict(stored)
    days: dict[tuple[str, int, str, str], int] = {}
    for r in sorted(readings, key=lambda r: (r.device, r.boot, r.up_ms)):
        day = bucket_of(r.t, DAY)
        for reason, total in r.totals.items():
            key = (r.device, r.boot, reason)
            before = high.get(key, 0)
            if total > before:
                high[key] = total
                at = (r.site, day, r.health, reason)
                days[at] = days.get(at, 0) + total - before
    seen = [
        {"device": d, "boot": b, "reason": reason, "seen": n}
        for (d, b, reason), n in sorted(high.items())
        if n != stored.get((d, b, reason))
    ]
    rows = [
        {"site": s, "bucket": day, "health": h, "reason": reason, "count": n}
        for (s, day, h, reason), n in sorted(days.items())
    ]
    return Counted(seen, rows)


def add(session: Session, readings: Sequence[Reading]) -> None:
    """Count `readings` (plausible, stored by this transaction) into `unprompted_day`."""
    if not readings:
        return
    keys = {(r.device, r.boot) for r in readings}
    lists = {"devices": sorted({d for d, _ in keys}), "boots": sorted({b for _, b in keys})}
    stored = {
        (d, b, reason): seen
        for d, b, reason, seen in session.execute(_seen(dialect_of(session)), lists)
        if (d, b) in keys
    }
    counted = count(readings, stored)
    upsert(session, SEEN, counted.seen, ("device", "boot", "reason"), _higher)
    upsert(session, DAYS, counted.days, ("site", "bucket", "health", "reason"), _added)


@cache
def _seen(dialect: str) -> Any:
    c = SEEN.c
    return select(c.device, c.boot, c.reason, c.seen).where(
        listed(c.device, "devices", dialect), listed(c.boot, "boots", dialect)
    )


def _higher(c: Any, x: Any) -> dict[str, Any]:
    return {"seen": greater(c.seen, x.seen)}


def _added(c: Any, x: Any) -> dict[str, Any]:
    return {"count": c["count"] + x["count"]}
