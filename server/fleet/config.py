"""Desired config per device (over its site's default), what the device reports, the drift,
and the commands that carry a change (`command_queue.issue`)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, Field
from sqlmodel import Session

from server.fleet.command_queue import fleet_row, issue, pending
from server.fleet.commands import check_settings, nest
from server.models import FleetCommand, FleetDevice, SiteConfig
from server.models.fleet import CommandKind


class Desired(BaseModel):
    cfg: int = Field(description="config version; 0: factory settings, never changed")
    settings: dict[str, Any] = Field(description="the site's default with the device's own over it")
    at: float | None
    by: str | None


class Reported(BaseModel):
    cfg: int | None = Field(description="config version the device runs (its status `cfg`)")
    cmd: int | None = Field(description="last command number it accepted")
    cmd_error: str | None = Field(description="why it refused the last command it refused")
    update: str | None = Field(description="staging, applied, rolled_back, refused:<reason>")
    at: float | None = Field(description="when the gateway received that status")


class DeviceConfig(BaseModel):
    """`GET /api/v1/devices/{id}/config`."""

    device: str
    site: str
    desired: Desired
    reported: Reported
    drift: bool = Field(description="the device does not run the desired config version (yet)")
    pending: int = Field(description="commands the device has not confirmed")


class ConfigChange(BaseModel):
    """`PUT /api/v1/devices/{id}/config`: a partial config (docs/protocol.md, settable keys)."""

    set: dict[str, Any] = Field(examples=[{"prompt": {"text": "Would you recommend us?"}}])


class Queued(BaseModel):
    """A command queued for a device's gateway."""

    id: int
    device: str
    n: int
    kind: str
    cfg: int | None = None


def queued(command: FleetCommand) -> Queued:
    assert command.id is not None
    cfg = command.body.get("cfg")
    return Queued(id=command.id, device=command.device, n=command.n, kind=command.kind, cfg=cfg)


def _site_default(session: Session, site: str) -> dict[str, Any]:
    row = session.get(SiteConfig, site)
    return {} if row is None else dict(row.settings)


def view(session: Session, *, device: str, site: str) -> DeviceConfig:
    row = session.get(FleetDevice, device) or FleetDevice(device=device, site=site)
    settings = _site_default(session, site) | row.desired
    drift = row.desired_cfg != (row.reported_cfg or 0)
    return DeviceConfig(
        device=device, site=site,
        desired=Desired(cfg=row.desired_cfg, settings=nest(settings), at=row.desired_at,
                        by=row.desired_by),
        reported=Reported(cfg=row.reported_cfg, cmd=row.reported_cmd, cmd_error=row.cmd_error,
                          update=row.update_state, at=row.reported_at),
        drift=drift, pending=pending(session, device=device),
    )  # fmt: skip


def _push(
    session: Session, *, key: Ed25519PrivateKey, row: FleetDevice, by: str, now: float
) -> FleetCommand:
    """A new config version for the device and the command carrying all of it: the whole
    desired config each time, so a device that missed a version still ends where asked."""
    row.desired_cfg += 1
    row.desired_at, row.desired_by = now, by
    settings = _site_default(session, row.site) | row.desired
    body = {"cfg": row.desired_cfg, "set": nest(settings)}
    return issue(
        session, key=key, device=row.device, site=row.site, kind=CommandKind.CONFIG, body=body,
        by=by, now=now,
    )  # fmt: skip


def change(
    session: Session, *, key: Ed25519PrivateKey, device: str, site: str,
    partial: dict[str, Any], by: str, now: float,
) -> FleetCommand:  # fmt: skip
    """Merge `partial` (checked: BadSetting) into the device's desired config. Caller commits."""
    flat = check_settings(partial)
    row = fleet_row(session, device=device, site=site, lock=True)
    row.desired = row.desired | flat
    return _push(session, key=key, row=row, by=by, now=now)


def change_site(
    session: Session, *, key: Ed25519PrivateKey, site: str, partial: dict[str, Any],
    devices: list[str], by: str, now: float,
) -> list[FleetCommand]:  # fmt: skip
    """Merge `partial` into the site's default and send each of its `devices` its new config."""
    flat = check_settings(partial)
    row = session.get(SiteConfig, site)
    if row is None:
        row = SiteConfig(site=site, settings={}, updated_at=now, updated_by=by)
        session.add(row)
    row.settings = dict(row.settings) | flat
    row.updated_at, row.updated_by = now, by
    session.flush()
    out = []
    for device in devices:
        out.append(
            _push(session, key=key, row=fleet_row(session, device=device, site=site), by=by,
                  now=now)
        )  # fmt: skip
    return out
