"""Ingest: judge each event alone, store each id once, time it, join health, roll up, alert.

`ingest_batch` is the one call behind `POST /api/v1/ingest`; it writes in one
transaction (all of a batch's good events, or none) and returns what the
route answers plus what happened (new feedback and alerts to publish).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session

from nps_edge.protocol import (
    ForwardedFeedback,
    ForwardedTelemetry,
    Rejection,
)
from server import alerts as alerting
from server import rollups, timebase
from server.db import write_session
from server.join import FeedbackRow, join_feedback
from server.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REJECTED
from server.models import (
    BootRecord,
    DeadLetter,
    Device,
    EventRecord,
    Feedback,
    Telemetry,
)
from server.rollup_tables import ROLLUP_TABLES
from server.settings import Settings
from server.sql import (
    add_counts,
    case_when,
    greater,
    insert_new,
    insert_rows,
    lesser,
    table_of,
    upsert,
)
from server.validation import Forwarded, Rejected, reason_class, validate

BOOT = table_of(BootRecord).c
LEDGER = ("id", "device", "seq", "type", "rx_ts", "gateway")


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def rejections(self) -> list[Rejection]:
        return [Rejection(index=r.index, id=r.id, error=r.error) for r in self.rejected]


def ingest_batch(
    engine: Engine,
    *,
    gateway: str,
    events: Sequence[Any],
    settings: Settings,
    now: float | None = None,
) -> Outcome:
    now = time.time() if now is None else now
    good, bad, repeats = validate(events)
    out = Outcome(rejected=bad, duplicates=repeats)
    with write_session(engine) as session:
        ledger = sorted((ev.id, ev.device, ev.seq, ev.type, ev.rx_ts, gateway) for ev in good)
        new_ids = insert_new(session, table_of(EventRecord), LEDGER, ledger, "id")
        fresh = [ev for ev in good if ev.id in new_ids]
        out.duplicates += len(good) - len(fresh)
        out.accepted = len(fresh)
        if fresh:
            out.feedback, out.alerts = _store(session, fresh, gateway, settings, now)
        if bad:
            session.execute(
                table_of(DeadLetter).insert(),
                [
                    {"gateway": gateway, "index": r.index, "event_id": r.id,
                     "reason_class": reason_class(r.error), "error": r.error,
                     "payload": json.dumps(r.payload, default=str)[:4096], "received_at": now}
                    for r in bad
                ],
            )  # fmt: skip
        session.commit()
    EVENTS_ACCEPTED.inc(out.accepted)
    EVENTS_DUPLICATE.inc(out.duplicates)
    for r in bad:
        EVENTS_REJECTED.labels(reason=reason_class(r.error)).inc()
    return out


def _store(
    session: Session, fresh: list[Forwarded], gateway: str, settings: Settings, now: float
) -> tuple[list[FeedbackRow], list[dict[str, Any]]]:
    times = _time_events(session, fresh)
    telemetry = [ev for ev in fresh if isinstance(ev, ForwardedTelemetry)]
    feedback = [ev for ev in fresh if isinstance(ev, ForwardedFeedback)]
    _store_telemetry(session, telemetry, times)
    rows = join_feedback(session, feedback, times, gateway, settings)
    insert_rows(session, table_of(Feedback), rows)
    _upsert_devices(session, fresh, rows, times, gateway)
    alerts = alerting.on_ingest(
        session, feedback=rows, telemetry=telemetry, settings=settings, now=now
    )
    # Last: every writer updates the same fleet-wide rollup rows, whose locks
    # are held until commit (PostgreSQL), so they are taken as late as possible.
    _roll_up(session, rows)
    return rows, alerts


def _time_events(session: Session, fresh: list[Forwarded]) -> dict[str, tuple[float, str]]:
    """(time, source) per event id, after updating the boot anchors (timebase rule)."""
    keys = sorted({(ev.device, ev.boot) for ev in fresh})
    known = {
        (b.device, b.boot): timebase.Anchor(b.start, b.exact, b.anchor_up_ms)
        for b in session.execute(
            select(BootRecord).where(tuple_(BOOT.device, BOOT.boot).in_(keys))
        ).scalars()
    }
    anchors = timebase.anchors(fresh, known)
    upsert(
        session,
        table_of(BootRecord),
        [
            {"device": d, "boot": b, "start": anchors[(d, b)].start, "exact": anchors[(d, b)].exact,
             "anchor_up_ms": anchors[(d, b)].up_ms, "errors_max": 0}
            for d, b in keys
        ],
        ("device", "boot"),
        _better_anchor,
    )  # fmt: skip
    return {ev.id: timebase.event_time(ev, anchors[(ev.device, ev.boot)]) for ev in fresh}


def _better_anchor(c: Any, x: Any) -> dict[str, Any]:
    """timebase.merge in SQL, so a concurrent writer never replaces a better anchor."""
    better = or_(
        and_(x.exact, ~c.exact),
        and_(x.exact, c.exact, x.anchor_up_ms >= c.anchor_up_ms),
        and_(~x.exact, ~c.exact, x.start < c.start),
    )
    return {k: case_when(better, x[k], c[k]) for k in ("start", "exact", "anchor_up_ms")}


def _store_telemetry(
    session: Session, events: list[ForwardedTelemetry], times: dict[str, tuple[float, str]]
) -> None:
    """Store telemetry with `errors_delta`: new errors since the boot's previous high mark."""
    if not events:
        return
    keys = sorted({(ev.device, ev.boot) for ev in events})
    high: dict[tuple[str, int], int] = {
        (d, b): m
        for d, b, m in session.execute(
            select(BOOT.device, BOOT.boot, BOOT.errors_max).where(
                tuple_(BOOT.device, BOOT.boot).in_(keys)
            )
        )
    }
    rows = []
    for ev in sorted(events, key=lambda e: (e.device, e.boot, e.up_ms)):
        total = sum(ev.errors.values())
        key = (ev.device, ev.boot)
        delta = max(0, total - high.get(key, 0))
        high[key] = max(high.get(key, 0), total)
        rows.append(
            {"id": ev.id, "device": ev.device, "site": ev.site, "seq": ev.seq, "boot": ev.boot,
             "up_ms": ev.up_ms, "t": times[ev.id][0], "ts": ev.ts, "rx_ts": ev.rx_ts, "fw": ev.fw,
             "battery_mv": ev.battery_mv, "rssi": ev.rssi, "heap_free": ev.heap_free,
             "heap_min": ev.heap_min, "uptime_s": ev.uptime_s, "temp_c": ev.temp_c,
             "outbox_depth": ev.outbox_depth, "reset_cause": ev.reset_cause, "errors": ev.errors,
             "errors_total": total, "errors_delta": delta}
        )  # fmt: skip
    insert_rows(session, table_of(Telemetry), rows)
    upsert(
        session,
        table_of(BootRecord),
        [{"device": d, "boot": b, "start": 0.0, "errors_max": high[(d, b)]} for d, b in keys],
        ("device", "boot"),
        lambda c, x: {"errors_max": greater(c.errors_max, x.errors_max)},
    )


_DIMS = itemgetter(
    "site", "device", "prompt", "trigger_kind", "fw", "reason", "rssi_band", "battery_band",
    "health",
)  # fmt: skip
assert rollups.DIMS[5] == "reason"


def fact(row: Mapping[str, Any]) -> rollups.Fact:
    """A feedback row as the rollups count it (also used by the benchmark's check)."""
    dims = _DIMS(row)
    if dims[5] is None:
        dims = (*dims[:5], rollups.NONE, *dims[6:])
    return rollups.Fact(row["t"], row["category"], dims)


def roll_up(session: Session, facts: Sequence[rollups.Fact]) -> None:
    """Add facts to every rollup table (the single code path for ingest and bulk loads)."""
    cuboids = dict(rollups.CUBOIDS)
    for (name, grain), acc in rollups.aggregate(facts).items():
        rows = [(*key, *acc[key]) for key in sorted(acc)]  # one lock order for all writers
        add_counts(
            session, ROLLUP_TABLES[(name, grain)], (*cuboids[name], "bucket"), rollups.COUNTS, rows
        )


def _roll_up(session: Session, rows: list[FeedbackRow]) -> None:
    roll_up(session, [fact(r) for r in rows])


def _upsert_devices(
    session: Session,
    fresh: list[Forwarded],
    feedback: list[FeedbackRow],
    times: dict[str, tuple[float, str]],
    gateway: str,
) -> None:
    per: dict[str, dict[str, Any]] = {}
    for ev in sorted(fresh, key=lambda e: e.seq):
        d = per.setdefault(
            ev.device,
            {"id": ev.device, "first_seen": ev.rx_ts, "last_seen": ev.rx_ts, "received": 0,
             "promoters": 0, "passives": 0, "detractors": 0, "shown": 0,
             "health_t": None, "battery_mv": None, "rssi": None},
        )  # fmt: skip
        d.update(site=ev.site, fw=ev.fw, gateway=gateway, boot=ev.boot, max_seq=ev.seq)
        d["first_seen"] = min(d["first_seen"], ev.rx_ts)
        d["last_seen"] = max(d["last_seen"], ev.rx_ts)
        d["received"] += 1
        if isinstance(ev, ForwardedTelemetry):
            rssi, mv = ev.rssi, ev.battery_mv
        else:
            rssi, mv = ev.ctx.rssi, ev.ctx.battery_mv
        t = times[ev.id][0]
        if (rssi is not None or mv is not None) and (d["health_t"] is None or t >= d["health_t"]):
            d.update(health_t=t, rssi=rssi, battery_mv=mv)
    for row in feedback:
        d = per[row["device"]]
        d["shown"] += 1
        if row["category"] is not None:
            d[row["category"] + "s"] += 1
    for d in per.values():
        if d["health_t"] is None:
            d["health_t"] = -1.0

    def updates(c: Any, x: Any) -> dict[str, Any]:
        newer = x.max_seq > c.max_seq
        fresher = x.health_t > func.coalesce(c.health_t, -1.0)
        latest = {k: case_when(newer, x[k], c[k]) for k in ("site", "fw", "gateway", "boot")}
        health_cols = {
            k: case_when(fresher, x[k], c[k]) for k in ("health_t", "rssi", "battery_mv")
        }
        return (
            latest
            | health_cols
            | {
                "first_seen": lesser(c.first_seen, x.first_seen),
                "last_seen": greater(c.last_seen, x.last_seen),
                "max_seq": greater(c.max_seq, x.max_seq),
            }
            | {k: c[k] + x[k] for k in ("received", "promoters", "passives", "detractors", "shown")}
        )

    upsert(session, table_of(Device), [per[k] for k in sorted(per)], ("id",), updates)
