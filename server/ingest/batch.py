"""Ingest: judge each event alone, store each id once, time it, join health, roll up, alert.

`ingest_batch` is the one call behind `POST /api/v1/ingest`. It works out the
batch's rows (`server.ingest.prepare`; on SQLite from a read snapshot, before the write
lock), then writes them in one transaction (all of a batch's good events, or
none) that starts with the feedback and telemetry rows, whose primary key is
the event id, and returns what the route answers plus what happened (new
feedback and alerts to publish).

An id is stored once per event type. A batch that looks resent (its first or
last event is stored) first loses its stored events. The rest is worked out
as if every event were new (the usual case); if any id is already stored, the
rows are taken back (a savepoint), and the batch is worked out again for the
events whose ids are not, until that holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import String, and_, column, func, or_, select, table, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from contract.protocol import ForwardedFeedback, ForwardedTelemetry, Rejection
from server.alerts import store as alerting
from server.alerts.rules import OpenedAlert
from server.analytics import rollups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.db.engine import write_session
from server.db.listed import dialect_of, listed
from server.db.partitions import id_table
from server.db.sql import (
    case_when,
    greater,
    insert_all_new,
    lesser,
    quote,
    table_of,
    through_stage,
    upsert,
)
from server.ingest import binding, unprompted
from server.ingest.join import FeedbackRow
from server.ingest.prepare import Prepared, prepare
from server.ingest.validation import Forwarded, Rejected, validate
from server.metrics import Metrics
from server.models import BootRecord, DeadLetter, Device, Feedback, Telemetry
from server.settings import Settings


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)
    alerts: list[OpenedAlert] = field(default_factory=list)
    implausible_sampling: int = 0  # readings whose counters were not counted (`unprompted`)

    def rejections(self) -> list[Rejection]:
        return [Rejection(index=r.index, id=r.id, error=r.error) for r in self.rejected]


def ingest_batch(
    engine: Engine,
    *,
    gateway: str,
    events: Sequence[Any],
    settings: Settings,
    site: str | None,
    now: float | None = None,
    metrics: Metrics | None = None,
) -> Outcome:
    """`site` is the gateway token's site: events another site's gateway owns are
    rejected (`server.ingest.binding`). None only for trusted in-process callers (benchmarks).
    `metrics`: the app's counters; None for in-process callers that count nothing."""
    now = time.time() if now is None else now
    good, bad, repeats = validate(events, now=now, metrics=metrics)
    out = Outcome(rejected=bad, duplicates=repeats)
    judged_bad = len(bad)  # `_bound_to` adds the events another site owns to `bad`
    todo = good
    plan = None
    unbound: set[str] = set()
    # SQLite has one writer at a time: work the batch out before taking its lock.
    # PostgreSQL locks rows only as they are written, so there the batch is
    # worked out inside the transaction, saving one.
    if good and engine.dialect.name == "sqlite":
        with Session(engine) as snapshot:
            todo, unbound = _bound_to(snapshot, good, events, bad, site=site)
            todo = _unless_resent(snapshot, todo)
            if todo:
                plan = prepare(snapshot, todo, gateway=gateway, settings=settings, now=now)
    with write_session(engine) as session:
        if plan is None:
            todo, _ = _bound_to(session, todo, events, bad, site=site)
            todo = _unless_resent(session, todo)
        elif unbound:
            # A device first seen in this batch may have been bound by another
            # site's batch since the snapshot: check those again under the lock.
            kept, _ = _bound_to(session, todo, events, bad, site=site, only=unbound)
            if len(kept) != len(todo):
                todo, plan = kept, None
        fresh, plan = _store_new_events(
            session, todo, plan, gateway=gateway, settings=settings, now=now
        )
        out.duplicates += len(good) - (len(bad) - judged_bad) - len(fresh)
        out.accepted = len(fresh)
        if plan is not None:
            out.feedback, out.alerts = plan.feedback, _write(session, plan)
            out.implausible_sampling = plan.implausible_sampling
        if bad:
            session.execute(
                table_of(DeadLetter).insert(),
                [
                    {"gateway": gateway, "index": r.index, "event_id": r.id,
                     "reason_class": r.field, "error": r.error,
                     "payload": json.dumps(r.payload, default=str)[:4096], "received_at": now}
                    for r in bad
                ],
            )  # fmt: skip
        session.commit()
    if metrics is not None:
        metrics.events_accepted.inc(out.accepted)
        metrics.events_duplicate.inc(out.duplicates)
        for r in bad:
            metrics.events_rejected.labels(reason=r.field).inc()
        if out.implausible_sampling:
            metrics.unprompted_ignored.labels(reason="implausible").inc(out.implausible_sampling)
    return out


def _bound_to(
    session: Session,
    events: list[Forwarded],
    raw: Sequence[Any],
    bad: list[Rejected],
    *,
    site: str | None,
    only: set[str] | None = None,
) -> tuple[list[Forwarded], set[str]]:
    """The events `site`'s gateway may deliver (`server.ingest.binding`), and the devices of
    those that nothing binds yet; the others are added to `bad` with their reason.
    `only` limits the check to those devices. One query for the whole batch."""
    if site is None or not events:
        return events, set()
    devices = {ev.device for ev in events} if only is None else only
    known = binding.lookup(session, devices)
    kept: list[Forwarded] = []
    refused: dict[str, binding.Refusal] = {}
    for ev in events:
        reason = None
        if ev.device in devices:
            reason = binding.refusal(ev.device, ev.site, site=site, known=known)
        if reason is None:
            kept.append(ev)
        else:
            refused[ev.id] = reason
    if refused:
        # Good events keep no batch index: find each refused id's first place in the body.
        for i, obj in enumerate(raw):
            key = obj.get("id") if isinstance(obj, dict) else None
            why = refused.pop(key, None) if isinstance(key, str) else None
            if why is not None:
                bad.append(Rejected(i, key, why.reason, obj, why.field))
        bad.sort(key=attrgetter("index"))
    return kept, {d for d in devices if not known.bound(d)}


def _store_new_events(
    session: Session,
    events: list[Forwarded],
    plan: Prepared | None,
    *,
    gateway: str,
    settings: Settings,
    now: float,
) -> tuple[list[Forwarded], Prepared | None]:
    """Store the telemetry and feedback rows of the events not stored before; those
    events and their plan (None when there are none). `plan`, worked out for all
    of `events`, is used when all are new."""
    fresh = events
    while fresh:
        if plan is None:
            plan = prepare(session, fresh, gateway=gateway, settings=settings, now=now)
        if _store_events(session, plan):
            return fresh, plan
        unseen = _not_stored(session, fresh)  # some were sent before
        if len(unseen) == len(fresh):  # a taken key that is not an event id: a fault
            raise RuntimeError("ingest: a row's key was taken, yet no event id is stored")
        fresh, plan = unseen, None
    return [], None


def _unless_resent(session: Session, events: list[Forwarded]) -> list[Forwarded]:
    """`events`, less those stored before when the batch looks resent (its first or
    last event is stored): a gateway resends a batch whose answer it missed, and
    the stored events then cost one lookup instead of working the batch out."""
    if not events:
        return events
    ends = {"first": events[0].id, "last": events[-1].id}
    if session.execute(_either_stored(session), ends).first() is None:
        return events
    return _not_stored(session, events)


def _either_stored(session: Session) -> Any:
    """Both types' ids for both ids: one cheap statement (an id stored as the other type
    only sends the batch on to the exact check by type)."""
    return text(
        " UNION ALL ".join(
            f"SELECT 1 FROM {quote(id_table(session.connection(), table_of(model).name))}"
            " WHERE id IN (:first, :last)"
            for model in (Feedback, Telemetry)
        )
    )


def _store_events(session: Session, plan: Prepared) -> bool:
    """Insert the batch's telemetry and feedback rows, in id order; False, with neither
    stored, when an id was already (`sql.insert_all_new`)."""
    by_id = itemgetter("id")
    feedback = cast(list[dict[str, Any]], plan.feedback)  # inserted as the dicts they are
    return insert_all_new(
        session,
        [
            (table_of(Telemetry), sorted(plan.telemetry, key=by_id)),
            (table_of(Feedback), sorted(feedback, key=by_id)),
        ],
    )


def _not_stored(session: Session, events: list[Forwarded]) -> list[Forwarded]:
    """The events whose id their type's table does not hold."""
    stored: set[str] = set()
    for model, kind in ((Feedback, ForwardedFeedback), (Telemetry, ForwardedTelemetry)):
        ids = [ev.id for ev in events if isinstance(ev, kind)]
        if ids:
            ledger = id_table(session.connection(), table_of(model).name)
            found = session.execute(_stored_of(dialect_of(session), ledger), {"ids": ids})
            stored.update(found.scalars())
    return [ev for ev in events if ev.id not in stored]


@cache
def _stored_of(dialect: str, ledger: str) -> Any:
    """The ids given as `ids` that `ledger` (a table or its id ledger) holds."""
    key = table(ledger, column("id", String)).c.id
    return select(key).where(listed(key, "ids", dialect))


def _write(session: Session, plan: Prepared) -> list[OpenedAlert]:
    """Store the rest of a prepared batch; the alerts it opened, with their ids."""
    upsert(session, table_of(BootRecord), plan.boots, ("device", "boot"), _merge_boot)
    upsert(session, table_of(Device), plan.devices, ("id",), _merge_device)
    unprompted.add(session, plan.unprompted)  # after the device rows: see its docstring
    alerts = alerting.insert(session, plan.alerts)
    # Last: every writer updates the same fleet-wide rollup rows, whose locks
    # are held until commit (PostgreSQL), so they are taken as late as possible.
    roll_up(session, plan.counts)
    return alerts


def _merge_boot(c: Any, x: Any) -> dict[str, Any]:
    """timebase.merge in SQL, so a concurrent writer never replaces a better anchor;
    the error high mark only grows."""
    better = or_(
        and_(x.exact, ~c.exact),
        and_(x.exact, c.exact, x.anchor_up_ms >= c.anchor_up_ms),
        and_(~x.exact, ~c.exact, x.start < c.start),
    )
    anchor = {k: case_when(better, x[k], c[k]) for k in ("start", "exact", "anchor_up_ms")}
    return anchor | {"errors_max": greater(c.errors_max, x.errors_max)}


def _merge_device(c: Any, x: Any) -> dict[str, Any]:
    newer = x.max_seq > c.max_seq
    fresher = x.health_t > func.coalesce(c.health_t, -1.0)
    latest = {k: case_when(newer, x[k], c[k]) for k in ("site", "fw", "gateway", "boot")}
    health_cols = {k: case_when(fresher, x[k], c[k]) for k in ("health_t", "rssi", "battery_mv")}
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


def roll_up(session: Session, counts: rollups.Finest) -> None:
    """Add finest-grain counts to every rollup table, summed in SQL (`rollups.rollup_sql`);
    the tables without the device from the counts summed over devices first."""
    through_stage(
        session,
        "_stage_rollup",
        rollups.STAGE_COLUMNS,
        [(*key, *c) for key, c in counts.items()],
        lambda source, condensed: [
            rollups.rollup_sql(condensed if rollups.reads_condensed(name) else source, name, grain)
            for name, grain in ROLLUP_TABLES
        ],
        condense=rollups.condensed_sql,
    )
