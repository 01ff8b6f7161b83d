"""Commands in the database: issuing one (the device's next `n`), the gateway's pickup
(only its site's devices, signed update commands pointing at that gateway), and what the
devices' status reports (`cfg`, `cmd`, `cmd_error`, `update`) say back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlmodel import Session

from server.db.sql import table_of
from server.fleet.commands import command_text, signed_message
from server.ingest import binding
from server.models import (
    Device,
    FleetCommand,
    FleetDevice,
    GatewaySite,
    RegisteredDevice,
    Rollout,
)
from server.models.fleet import CommandKind, RolloutState

C = table_of(FleetCommand).c
F = table_of(FleetDevice).c
PICKUP_LIMIT = 100
STOPPED = (RolloutState.HALTED, RolloutState.ROLLED_BACK)


class Report(Protocol):
    """What a status report carries for the fleet (contract.protocol.PresenceUpdate)."""

    device: str
    rx_ts: float
    cfg: int | None
    cmd: int | None
    cmd_error: str | None
    update: str | None


def device_site(session: Session, device: str) -> str | None:
    """The site a device belongs to (registry first, else first seen); None: unknown or revoked."""
    known = binding.lookup(session, [device])
    if device in known.revoked:
        return None
    return known.registered.get(device) or known.seen.get(device)


def fleet_row(session: Session, *, device: str, site: str, lock: bool = False) -> FleetDevice:
    """The device's fleet row, made on first use; `lock`: held for update (PostgreSQL)."""
    row = session.get(FleetDevice, device, with_for_update=lock or None)
    if row is None:
        row = FleetDevice(device=device, site=site)
        session.add(row)
        session.flush()
    return row


def issue(
    session: Session, *, key: Ed25519PrivateKey, device: str, site: str, kind: CommandKind,
    body: dict[str, Any], by: str, now: float, exp: float | None = None,
    version: str | None = None,
) -> FleetCommand:  # fmt: skip
    """Queue a command with the device's next `n`; signed now unless it is an update
    (signed at pickup, when the URL of the site's gateway is known). Caller commits."""
    row = fleet_row(session, device=device, site=site, lock=True)
    row.last_n += 1
    command = FleetCommand(
        device=device, site=site, n=row.last_n, kind=kind, version=version, body=body,
        exp=exp, created_at=now, created_by=by,
    )  # fmt: skip
    if kind != CommandKind.UPDATE:
        command.payload = _signed(key, command, body)
    session.add(command)
    session.flush()
    return command


def _signed(key: Ed25519PrivateKey, command: FleetCommand, body: dict[str, Any]) -> str:
    text = command_text(
        device=command.device, n=command.n, kind=CommandKind(command.kind), exp=command.exp,
        body=body,
    )  # fmt: skip
    return signed_message(key, text)


def pickup(
    session: Session, *, key: Callable[[], Ed25519PrivateKey], site: str, after: int,
    fw_url: str | None, now: float | None = None,
) -> list[FleetCommand]:  # fmt: skip
    """The site's commands after id `after` that the device has not confirmed yet and that
    have not expired, oldest first. Update commands are signed here with `fw_url`; without
    one the list stops before the first update (the gateway's cursor must not skip it)."""
    now = time.time() if now is None else now
    if fw_url is not None:
        spot = session.get(GatewaySite, site)
        if spot is None:
            session.add(GatewaySite(site=site, fw_url=fw_url, seen_at=now))
        else:
            spot.fw_url, spot.seen_at = fw_url, now
    rows = session.execute(
        select(FleetCommand, F.reported_cmd)
        .join(FleetDevice, F.device == C.device, isouter=True)
        .where(C.site == site, C.id > after)
        .order_by(C.id)
        .limit(PICKUP_LIMIT)
    ).all()
    stopped = _stopped_versions(session, {c.version for c, _ in rows if c.version})
    out: list[FleetCommand] = []
    for command, confirmed in rows:
        if command.version in stopped:
            continue  # its rollout was halted: an update not yet fetched is withheld
        if command.payload is None:
            if fw_url is None:
                break
            body = command.body | {
                "release": command.body["release"] | {"url": f"{fw_url}/fw/{command.version}/"}
            }
            command.payload = _signed(key(), command, body)
        if (confirmed is not None and confirmed >= command.n) or (
            command.exp is not None and command.exp < now
        ):
            continue
        out.append(command)
    session.flush()
    return out


def pending(session: Session, *, device: str) -> int:
    """Commands the device has not confirmed yet."""
    row = session.get(FleetDevice, device)
    confirmed = 0 if row is None or row.reported_cmd is None else row.reported_cmd
    return len(session.execute(select(C.id).where(C.device == device, C.n > confirmed)).all())


def record_reports(session: Session, reports: Iterable[tuple[Report, str]]) -> None:
    """Store what each status says of its config, commands and update (newest wins);
    `reports` pairs each with the device's site. Caller commits."""
    for report, site in sorted(reports, key=lambda rs: rs[0].rx_ts):
        if report.cfg is None and report.cmd is None and report.update is None:
            continue
        row = fleet_row(session, device=report.device, site=site)
        if row.reported_at is not None and report.rx_ts < row.reported_at:
            continue
        row.reported_at = report.rx_ts
        if report.cfg is not None:
            row.reported_cfg = report.cfg
        if report.cmd is not None:
            row.reported_cmd = report.cmd
        row.cmd_error = report.cmd_error
        row.update_state = report.update


def site_devices(session: Session, site: str) -> list[str]:
    """The devices of a site: registered there (not revoked) or first seen there."""
    reg = table_of(RegisteredDevice).c
    dev = table_of(Device).c
    ids = set(
        session.execute(select(reg.device).where(reg.site == site, reg.revoked_at.is_(None)))
        .scalars()
        .all()
    )
    revoked = set(
        session.execute(select(reg.device).where(reg.revoked_at.is_not(None))).scalars().all()
    )
    ids |= set(session.execute(select(dev.id).where(dev.site == site)).scalars().all()) - revoked
    return sorted(ids)


def _stopped_versions(session: Session, versions: set[str]) -> set[str]:
    """Of `versions`, those whose latest rollout is halted or rolled back."""
    if not versions:
        return set()
    R = table_of(Rollout).c
    latest: dict[str, str] = {}
    for version, state in session.execute(
        select(R.version, R.state).where(R.version.in_(sorted(versions))).order_by(R.id)
    ):
        latest[version] = state
    return {v for v, state in latest.items() if state in STOPPED}
