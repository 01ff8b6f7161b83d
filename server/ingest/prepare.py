"""A batch's writes, worked out before any is made (docs/server.md).

Everything ingest stores (event times, telemetry with its error increments, the
health join, device rows, alerts, rollup increments) is computed here from what
is stored plus the batch itself, so that writing is only writing. On SQLite it
runs on a read snapshot before the one writer's lock is taken, which keeps the
lock for milliseconds of inserts instead of the whole batch's work; on
PostgreSQL inside the write transaction. Either way it assumes every event is
new; `server.ingest.batch` works the batch out again if some were stored before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from contract.protocol import ForwardedFeedback, ForwardedTelemetry
from server.alerts import store as alerting
from server.alerts.rules import ProposedAlert
from server.analytics import rollups
from server.db.listed import dialect_of, listed
from server.db.sql import table_of
from server.ingest import timebase, unprompted
from server.ingest.join import FeedbackRow, join_feedback
from server.ingest.validation import Forwarded
from server.models import BootRecord
from server.settings import Settings

BOOT = table_of(BootRecord).c
Times = dict[str, tuple[float, str]]  # event id -> (time, source)


@dataclass
class Prepared:
    """The rows one batch adds or merges, table by table."""

    boots: list[dict[str, Any]]
    telemetry: list[dict[str, Any]]
    feedback: list[FeedbackRow]
    devices: list[dict[str, Any]]
    alerts: list[ProposedAlert]  # not stored yet: no id
    counts: rollups.Finest  # rollup increments at the finest grain
    unprompted: list[unprompted.Reading]  # readings whose counters say transactions were skipped
    implausible_sampling: int  # readings whose counters are not counted (`unprompted.plausible`)


def prepare(
    session: Session,
    events: list[Forwarded],
    *,
    gateway: str,
    settings: Settings,
    now: float,
) -> Prepared:
    keys = sorted({(ev.device, ev.boot) for ev in events})
    known: dict[tuple[str, int], timebase.Anchor] = {}
    high: dict[tuple[str, int], int] = {}
    # Two lists rather than a list of pairs: both are index conditions on the
    # (device, boot) key; pairs PostgreSQL plans as a scan of one boot number.
    wanted = set(keys)
    lists = {"devices": sorted({d for d, _ in keys}), "boots": sorted({b for _, b in keys})}
    for d, b, start, exact, up_ms, errors_max in session.execute(
        _boots(dialect_of(session)), lists
    ).all():
        if (d, b) not in wanted:
            continue
        known[(d, b)] = timebase.Anchor(start, exact, up_ms)
        high[(d, b)] = errors_max
    anchors = timebase.anchors(events, known)
    times = {ev.id: timebase.event_time(ev, anchors[(ev.device, ev.boot)]) for ev in events}
    telemetry_events = [ev for ev in events if isinstance(ev, ForwardedTelemetry)]
    telemetry = telemetry_rows(telemetry_events, times, high)
    counting = [(r, totals) for r in telemetry if (totals := unprompted.totals_of(r["sampling"]))]
    feedback, states = join_feedback(
        session,
        [ev for ev in events if isinstance(ev, ForwardedFeedback)],
        times,
        gateway,
        settings,
        batch_telemetry=telemetry,
        batch_boots={k: a.start for k, a in anchors.items()},
        readings=[r for r, _ in counting],
    )
    readings = [
        unprompted.Reading(
            r["device"], r["boot"], r["up_ms"], r["site"], r["t"], states[r["id"]], totals
        )
        for r, totals in counting
    ]
    counted = [r for r in readings if unprompted.plausible(r)]
    boots = [
        {"device": d, "boot": b, "start": anchors[(d, b)].start, "exact": anchors[(d, b)].exact,
         "anchor_up_ms": anchors[(d, b)].up_ms, "errors_max": high.get((d, b), 0)}
        for d, b in keys
    ]  # fmt: skip
    return Prepared(
        boots=boots,
        telemetry=telemetry,
        feedback=feedback,
        devices=device_rows(events, feedback, times, gateway),
        alerts=alerting.on_ingest(
            session, feedback=feedback, telemetry=telemetry_events, settings=settings, now=now
        ),
        counts=rollups.finest(fact(r) for r in feedback),
        unprompted=counted,
        implausible_sampling=len(readings) - len(counted),
    )


@cache
def _boots(dialect: str) -> Any:
    return select(
        BOOT.device, BOOT.boot, BOOT.start, BOOT.exact, BOOT.anchor_up_ms, BOOT.errors_max
    ).where(listed(BOOT.device, "devices", dialect), listed(BOOT.boot, "boots", dialect))


def telemetry_rows(
    events: list[ForwardedTelemetry], times: Times, high: dict[tuple[str, int], int]
) -> list[dict[str, Any]]:
    """Telemetry rows with `errors_delta`: new errors since the boot's previous high mark.

    `high` (boot -> highest error total seen) is updated to include the batch.
    """
    rows = []
    for ev in sorted(events, key=lambda e: (e.device, e.boot, e.up_ms)):
        total = sum(ev.errors.values())
        key = (ev.device, ev.boot)
        before = high.get(key, 0)
        high[key] = max(before, total)
        rows.append(
            {"id": ev.id, "device": ev.device, "site": ev.site, "seq": ev.seq, "boot": ev.boot,
             "up_ms": ev.up_ms, "t": times[ev.id][0], "ts": ev.ts, "rx_ts": ev.rx_ts, "fw": ev.fw,
             "battery_mv": ev.battery_mv, "rssi": ev.rssi, "heap_free": ev.heap_free,
             "heap_min": ev.heap_min, "uptime_s": ev.uptime_s, "temp_c": ev.temp_c,
             "outbox_depth": ev.outbox_depth, "reset_cause": ev.reset_cause, "errors": ev.errors,
             "errors_total": total, "errors_delta": max(0, total - before),
             "sampling": getattr(ev, "sampling", None)}  # kept by validation's model
        )  # fmt: skip
    return rows


def device_rows(
    events: list[Forwarded], feedback: list[FeedbackRow], times: Times, gateway: str
) -> list[dict[str, Any]]:
    """Per device: what the batch says of it, merged into its row by `server.ingest.batch`."""
    per: dict[str, dict[str, Any]] = {}
    for ev in sorted(events, key=attrgetter("seq")):
        rx = ev.rx_ts
        d = per.get(ev.device)
        if d is None:
            d = per[ev.device] = {
                "id": ev.device, "first_seen": rx, "last_seen": rx, "received": 0,
                "promoters": 0, "passives": 0, "detractors": 0, "shown": 0,
                "health_t": None, "battery_mv": None, "rssi": None,
            }  # fmt: skip
        d["site"], d["fw"], d["gateway"], d["boot"], d["max_seq"] = (
            ev.site, ev.fw, gateway, ev.boot, ev.seq
        )  # fmt: skip
        if rx < d["first_seen"]:
            d["first_seen"] = rx
        elif rx > d["last_seen"]:
            d["last_seen"] = rx
        d["received"] += 1
        if isinstance(ev, ForwardedTelemetry):
            rssi, mv = ev.rssi, ev.battery_mv
        else:
            rssi, mv = ev.ctx.rssi, ev.ctx.battery_mv
        if rssi is not None or mv is not None:
            t = times[ev.id][0]
            if d["health_t"] is None or t >= d["health_t"]:
                d["health_t"], d["rssi"], d["battery_mv"] = t, rssi, mv
    for row in feedback:
        d = per[row["device"]]
        d["shown"] += 1
        if row["category"] is not None:
            d[row["category"] + "s"] += 1
    for d in per.values():
        if d["health_t"] is None:
            d["health_t"] = -1.0
    return [per[k] for k in sorted(per)]


_DIMS = itemgetter(*(rollups.RAW_COLUMN.get(d, d) for d in rollups.DIMS))
_NULLABLE = tuple(rollups.DIMS.index(d) for d in rollups.NULLABLE)


def fact(row: Mapping[str, Any]) -> rollups.Fact:
    """A feedback row as the rollups count it (also used by the benchmark's check)."""
    dims = _DIMS(row)
    if any(dims[i] is None for i in _NULLABLE):
        dims = tuple(rollups.NONE if v is None else v for v in dims)
    return rollups.Fact(row["t"], row["category"], dims)
