"""The health join at ingest: each feedback row with its device's health as of its time,
and the health state of the readings whose counters the north star counts
(`server.ingest.unprompted`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any, TypedDict

from sqlalchemy import and_, bindparam, literal_column, or_, select
from sqlmodel import Session

from contract.nps import Category, category
from contract.protocol import ForwardedFeedback
from server.db.listed import dialect_of, listed
from server.db.sql import table_of
from server.ingest import health
from server.models import BootRecord, Presence, Telemetry
from server.settings import Settings

BOOT = table_of(BootRecord).c


class FeedbackRow(TypedDict):
    """A `feedback` table row as ingest builds it: the event, its time, its joined health.

    A TypedDict, not a dataclass: the rows go to the insert as dicts (`server.db.sql`),
    and a slots dataclass plus its conversion back cost about 2 ms of a 40 ms batch
    of 1,000 events (measured, issue 13); a TypedDict costs nothing at run time.
    """

    id: str
    device: str
    site: str
    seq: int
    boot: int
    up_ms: int
    t: float
    ts: float | None
    time_source: str
    rx_ts: float
    fw: str
    outcome: str
    score: int | None
    category: Category | None
    prompt: str
    trigger_kind: str
    trigger_ref: str | None
    reason: str | None
    answer_ms: int | None
    rssi: float | None
    battery_mv: float | None
    telemetry_id: str | None
    errors_24h: int
    reboots_24h: int
    offline_min_24h: float
    rssi_band: str
    battery_band: str
    health: str
    survey: str
    role: str | None
    gateway: str


def histories(
    session: Session,
    spans: dict[str, tuple[float, float]],
    window_s: float,
    *,
    batch_telemetry: Sequence[Mapping[str, Any]] = (),
    batch_boots: Mapping[tuple[str, int], float] | None = None,
) -> dict[str, health.DeviceHistory]:
    """Each device's telemetry, error increments, boots and presence around its span.

    The batch being ingested is not stored yet: its telemetry rows and boot starts
    ((device, boot) -> start, replacing the stored start) are taken from it.
    """
    batch_boots = batch_boots or {}
    out = {d: _Gathered() for d in spans}
    if not spans:
        return {}
    back = _lookbacks(window_s)
    lo_all = min(lo for lo, _ in spans.values())
    hi_all = max(hi for _, hi in spans.values())
    if hi_all - lo_all <= 2 * health.DAY_S:  # a recent batch: one range for all its devices
        reads = _recent_reads(dialect_of(session))
        params: dict[str, Any] = {"devices": sorted(spans), "hi": hi_all}
        params |= {f"{name}_lo": lo_all - s for name, s in back.items()}
    else:  # a backlog spread over days: each device's own span
        reads, params = _reads(_each_span(spans, back)), {}
    samples, errors, boots, presence = (session.execute(q, params).all() for q in reads)
    for dev, t, tid, rssi, mv in samples:
        out[dev].samples.append(health.Sample(t, tid, rssi, mv))
    for dev, t, delta in errors:
        out[dev].errors.append((t, delta))
    for dev, start, boot in boots:
        out[dev].boot_starts.append((start, boot))
    for dev, at, online in presence:
        out[dev].presence.append((at, online))
    for row in batch_telemetry:
        h = out.get(row["device"])
        if h is None:
            continue
        h.samples.append(health.Sample(row["t"], row["id"], row["rssi"], row["battery_mv"]))
        if row["errors_delta"] > 0:
            h.errors.append((row["t"], row["errors_delta"]))
    for (dev, boot), start in batch_boots.items():
        h = out.get(dev)
        if h is not None:
            h.boot_starts = [(at, b) for at, b in h.boot_starts if b != boot] + [(start, boot)]
    if batch_telemetry or batch_boots:
        for h in out.values():
            h.samples.sort(key=attrgetter("t"))
            h.errors.sort(key=itemgetter(0))
            h.boot_starts.sort(key=itemgetter(0))
    # Built once every list is complete and sorted (its sample index is made then).
    return {
        d: health.DeviceHistory(h.samples, h.errors, h.boot_starts, h.presence)
        for d, h in out.items()
    }


# (device column, time column, lookback name) -> the rows' condition.
Within = Callable[[Any, Any, str], Any]


def _lookbacks(window_s: float) -> dict[str, float]:
    """How far before a span each read looks: "sample" the join window, "day" 24 h
    (errors, boots), "presence" 48 h."""
    return {"sample": window_s, "day": health.DAY_S, "presence": 2 * health.DAY_S}


def _reads(within: Within) -> tuple[Any, ...]:
    """The four reads of `histories`, each device's rows in the span `within` gives."""
    T, B, P = table_of(Telemetry).c, BOOT, table_of(Presence).c
    return (
        select(T.device, T.t, T.id, T.rssi, T.battery_mv)
        .where(within(T.device, T.t, "sample"))
        .order_by(T.t),
        select(T.device, T.t, T.errors_delta)
        .where(within(T.device, T.t, "day"), T.errors_delta > literal_column("0"))
        .order_by(T.t),
        select(B.device, B.start, B.boot).where(within(B.device, B.start, "day")).order_by(B.start),
        select(P.device, P.rx_ts, P.online)
        .where(within(P.device, P.rx_ts, "presence"))
        .order_by(P.rx_ts, P.id),
    )


@cache
def _recent_reads(dialect: str) -> tuple[Any, ...]:
    """`_reads` of a recent batch, built once: the devices as one list, one time range."""

    def within(device: Any, t: Any, lookback: str) -> Any:
        return and_(
            listed(device, "devices", dialect),
            t >= bindparam(f"{lookback}_lo"),
            t <= bindparam("hi"),
        )

    return _reads(within)


def _each_span(spans: dict[str, tuple[float, float]], back: Mapping[str, float]) -> Within:
    def within(device: Any, t: Any, lookback: str) -> Any:
        return or_(
            *(and_(device == d, t >= lo - back[lookback], t <= hi) for d, (lo, hi) in spans.items())
        )

    return within


@dataclass
class _Gathered:
    """A device's history while `histories` reads it, before it is sorted."""

    samples: list[health.Sample] = field(default_factory=list)
    errors: list[tuple[float, int]] = field(default_factory=list)
    boot_starts: list[tuple[float, int]] = field(default_factory=list)
    presence: list[tuple[float, bool]] = field(default_factory=list)


def join_feedback(
    session: Session,
    events: list[ForwardedFeedback],
    times: dict[str, tuple[float, str]],
    gateway: str,
    settings: Settings,
    *,
    batch_telemetry: Sequence[Mapping[str, Any]] = (),
    batch_boots: Mapping[tuple[str, int], float] | None = None,
    readings: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[FeedbackRow], dict[str, str]]:
    """The feedback rows with their joined health, and the health state of each of
    `readings` (telemetry rows of the batch: id -> state, from the same histories; the
    reading's own Wi-Fi and battery as an answer's `ctx`)."""
    spans: dict[str, tuple[float, float]] = {}
    points = [(ev.device, times[ev.id][0]) for ev in events]
    for device, t in [*points, *((r["device"], r["t"]) for r in readings)]:
        lo, hi = spans.get(device, (t, t))
        spans[device] = (min(lo, t), max(hi, t))
    found = histories(
        session, spans, settings.join_window_s,
        batch_telemetry=batch_telemetry, batch_boots=batch_boots,
    )  # fmt: skip
    rows: list[FeedbackRow] = []
    window_s = settings.join_window_s
    for ev in events:
        t, source = times[ev.id]
        ctx, trigger, score = ev.ctx, ev.trigger, ev.score
        j = health.join(
            t, found[ev.device], ctx_rssi=ctx.rssi, ctx_battery_mv=ctx.battery_mv, window_s=window_s
        )
        rows.append(
            {"id": ev.id, "device": ev.device, "site": ev.site, "seq": ev.seq, "boot": ev.boot,
             "up_ms": ev.up_ms, "t": t, "ts": ev.ts, "time_source": source, "rx_ts": ev.rx_ts,
             "fw": ev.fw, "outcome": ev.outcome, "score": score,
             "category": None if score is None else category(score), "prompt": ev.prompt,
             "trigger_kind": trigger.kind, "trigger_ref": trigger.ref, "reason": ev.reason,
             "answer_ms": ev.answer_ms, "rssi": j.rssi, "battery_mv": j.battery_mv,
             "telemetry_id": j.telemetry_id, "errors_24h": j.errors_24h,
             "reboots_24h": j.reboots_24h, "offline_min_24h": j.offline_min_24h,
             "rssi_band": j.rssi_band, "battery_band": j.battery_band, "health": j.health,
             "survey": ev.survey, "role": ev.role, "gateway": gateway}
        )  # fmt: skip
    states = {
        r["id"]: health.join(
            r["t"], found[r["device"]], ctx_rssi=r["rssi"], ctx_battery_mv=r["battery_mv"],
            window_s=window_s,
        ).health
        for r in readings
    }  # fmt: skip
    return rows, states
