"""Device queries and presence: the fleet list, one device, its seq gaps."""

from __future__ import annotations

import time

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from contract.nps import Tally, nps
from contract.protocol import PresenceRequest
from server.analytics.figures import Filters, figures
from server.db.engine import write_session
from server.db.sql import table_of
from server.fleet.command_queue import record_reports
from server.ingest import binding
from server.metrics import Metrics
from server.models import Device, Feedback, Presence, Telemetry
from server.schemas import DeviceDetail, DeviceRow, Gaps
from server.settings import Settings

D = table_of(Device).c


def is_online(dev: Device, *, settings: Settings, now: float) -> bool:
    """The last presence report when there is one, else heard from within `offline_after_s`."""
    if dev.online is not None:
        return dev.online
    return now - dev.last_seen <= settings.offline_after_s


def row(dev: Device, *, settings: Settings, now: float, tally: Tally | None = None) -> DeviceRow:
    """The device's row; its NPS and n from `tally` (the filtered window) when given,
    else all-time."""
    if tally is None:
        tally = Tally(dev.promoters, dev.passives, dev.detractors)
    n = tally.n
    value = nps(tally.promoters, tally.detractors, n)
    return DeviceRow(
        device=dev.id, site=dev.site, fw=dev.fw, online=is_online(dev, settings=settings, now=now),
        last_seen=dev.last_seen, battery_mv=dev.battery_mv, rssi=dev.rssi,
        nps=None if value is None else round(value, 2), n=n, missing=dev.max_seq - dev.received,
    )  # fmt: skip


def list_devices(
    session: Session,
    *,
    settings: Settings,
    site: str | None = None,
    now: float | None = None,
    window: Filters | None = None,
) -> list[DeviceRow]:
    """Every device (of `site`); with `window`, each one's NPS and n are those of the
    answers the filters select (a device with none there: n 0), like `GET /api/v1/nps`."""
    now = time.time() if now is None else now
    stmt = select(Device).order_by(D.site, D.id)
    if site is not None:
        stmt = stmt.where(D.site == site)
    tallies = None
    if window is not None:
        _, tallies = figures(session, window, "device")
    return [
        row(
            d,
            settings=settings,
            now=now,
            tally=None if tallies is None else tallies.get(d.id, Tally()),
        )
        for d in session.execute(stmt).scalars()
    ]


def device_detail(session: Session, *, device: str, settings: Settings) -> DeviceDetail | None:
    dev = session.get(Device, device)
    if dev is None:
        return None
    base = row(dev, settings=settings, now=time.time())
    return DeviceDetail(
        **base.model_dump(),
        boot=dev.boot,
        first_seen=first_event(session, dev),
        gateway=dev.gateway,
    )


def first_event(session: Session, dev: Device) -> float:
    """The time of the device's first stored event (its own clock, `t`), each table read
    by its device index; the first receive time when none is stored. (`first_seen` on the
    row is a receive time: history sent late would show as seen today.)"""
    firsts = [
        session.execute(select(func.min(t.c.t)).where(t.c.device == dev.id)).scalar()
        for t in map(table_of, (Feedback, Telemetry))
    ]
    return min([f for f in firsts if f is not None], default=dev.first_seen)


def gaps(session: Session, *, device: str) -> Gaps | None:
    """Seqs never received, as inclusive ranges, from the stored events' seqs
    (feedback and telemetry, each read by its device index) in one pass: each seq
    with the next one and the first, keeping the first and those before a gap."""
    dev = session.get(Device, device)
    if dev is None:
        return None
    seqs = union_all(
        *(select(t.c.seq).where(t.c.device == device) for t in map(table_of, (Feedback, Telemetry)))
    ).subquery()
    sub = select(
        seqs.c.seq,
        func.lead(seqs.c.seq).over(order_by=seqs.c.seq).label("nxt"),
        func.min(seqs.c.seq).over().label("first"),
    ).subquery()
    rows = session.execute(
        select(sub.c.seq, sub.c.nxt, sub.c.first)
        .where(or_(sub.c.nxt > sub.c.seq + 1, sub.c.seq == sub.c.first))
        .order_by(sub.c.seq)
    ).all()
    missing: list[tuple[int, int]] = []
    if rows and rows[0].first > 1:
        missing.append((1, rows[0].first - 1))
    for seq, after, _ in rows:
        if after is not None and after > seq + 1:
            missing.append((seq + 1, after - 1))
    return Gaps(device=device, max_seq=dev.max_seq, received=dev.received, missing=missing)


class PresenceIgnored(SQLModel):
    """A presence update another site's gateway sent, ignored (`server.ingest.binding`)."""

    index: int
    device: str
    error: str


class PresenceResult(SQLModel):
    accepted: int
    ignored: list[PresenceIgnored] = []


def record_presence(
    engine: Engine, *, request: PresenceRequest, site: str | None, metrics: Metrics
) -> PresenceResult:
    """Store presence reports; a device's current state is its newest report.

    An update for a device that `site`'s gateway may not speak for (registered to
    or first seen through another site, or revoked) is ignored and counted; so is
    one for a device not bound yet: only events bind, and a report kept before
    then would count for the device whichever site binds it (offline minutes).
    `site` None: a trusted in-process caller, nothing is checked.
    """
    if not request.updates:
        return PresenceResult(accepted=0)
    ignored: list[PresenceIgnored] = []
    with write_session(engine) as session:
        updates = list(enumerate(request.updates))
        if site is not None:
            known = binding.lookup(session, (u.device for u in request.updates))
            kept = []
            for i, u in updates:
                why = binding.refusal(u.device, None, site=site, known=known)
                if why is None and not known.bound(u.device):
                    why = binding.Refusal(
                        "device", f"device: {u.device} is not bound to a site yet (events bind)"
                    )
                if why is None:
                    kept.append((i, u))
                else:
                    ignored.append(PresenceIgnored(index=i, device=u.device, error=why.reason))
                    metrics.presence_ignored.labels(reason=why.field).inc()
            updates = kept
        if updates:
            session.execute(
                table_of(Presence).insert(),
                [
                    {"device": u.device, "online": u.online, "fw": u.fw, "boot": u.boot,
                     "rx_ts": u.rx_ts, "gateway": request.gateway}
                    for _, u in updates
                ],
            )  # fmt: skip
        reports = []
        for _, u in sorted(updates, key=lambda iu: (iu[1].device, iu[1].rx_ts)):
            dev = session.get(Device, u.device)
            if dev is not None and (dev.presence_ts is None or u.rx_ts >= dev.presence_ts):
                dev.online, dev.presence_ts = u.online, u.rx_ts
                if u.fw:
                    dev.fw = u.fw
            if dev is not None:
                reports.append((u, dev.site))
        record_reports(session, reports)  # the fleet's cfg/cmd/update (server/fleet)
        session.commit()
    return PresenceResult(accepted=len(updates), ignored=ignored)
