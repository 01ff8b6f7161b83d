"""`/api/v1/devices`: the fleet list, one device, its gaps and its telemetry (viewer;
a site-limited person sees only that site's devices)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlmodel import Session

from server.api.deps import Caller, DeviceId, SessionDep, SettingsDep, ViewerDep
from server.api.scope import ScopedFiltersDep, check_site
from server.db.sql import table_of
from server.devices import device_detail, gaps, list_devices
from server.models import Device, Telemetry
from server.schemas import DeviceDetail, DeviceRow, Gaps, Message, TelemetryPoint, TelemetrySeries

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    404: {"model": Message, "description": "no such device"},
}


def _unknown(device: str) -> HTTPException:
    return HTTPException(404, f"no device {device!r} has sent anything")


def _visible(session: Session, caller: Caller, device: str) -> None:
    """404 for a device never heard from, 403 for another site's (site-limited callers)."""
    if caller.site is None:
        return
    dev = session.get(Device, device)
    if dev is None:
        raise _unknown(device)
    check_site(caller, dev.site, f"device {device} (site {dev.site})")


@router.get("", response_model=list[DeviceRow], responses=ERRORS, summary="One row per device")
def devices(
    session: SessionDep,
    settings: SettingsDep,
    caller: ViewerDep,
    f: ScopedFiltersDep,
) -> list[DeviceRow]:
    """Takes the filters of `GET /api/v1/nps`: the list is every device of `site`, and
    each row's `nps` and `n` are those of the answers the filters select."""
    return list_devices(session, settings=settings, site=f.site, window=f)


@router.get("/{device}", response_model=DeviceDetail, responses=ERRORS, summary="One device")
def device(
    device: DeviceId, session: SessionDep, settings: SettingsDep, caller: ViewerDep
) -> DeviceDetail:
    _visible(session, caller, device)
    out = device_detail(session, device=device, settings=settings)
    if out is None:
        raise _unknown(device)
    return out


@router.get(
    "/{device}/gaps", response_model=Gaps, responses=ERRORS, summary="Seqs that never arrived"
)
def device_gaps(device: DeviceId, session: SessionDep, caller: ViewerDep) -> Gaps:
    _visible(session, caller, device)
    out = gaps(session, device=device)
    if out is None:
        raise _unknown(device)
    return out


@router.get(
    "/{device}/telemetry",
    response_model=TelemetrySeries,
    responses=ERRORS,
    summary="The device's latest telemetry, oldest first",
)
def telemetry(
    device: DeviceId,
    session: SessionDep,
    caller: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> TelemetrySeries:
    _visible(session, caller, device)
    T = table_of(Telemetry).c
    cols = ("battery_mv", "rssi", "heap_free", "heap_min", "temp_c", "uptime_s", "outbox_depth",
            "sampling")  # fmt: skip
    rows = session.execute(
        select(T.t, *(T[c] for c in cols))
        .where(T.device == device)
        .order_by(T.t.desc())
        .limit(limit)
    ).all()
    if not rows and session.get(Device, device) is None:
        raise _unknown(device)
    points = [
        TelemetryPoint(ts=r[0], **dict(zip(cols, r[1:], strict=True))) for r in reversed(rows)
    ]
    return TelemetrySeries(device=device, points=points)
