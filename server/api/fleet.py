"""The fleet's routes (issue 14): a device's desired vs reported config (viewers read,
operators change), reboot, a site's default config; and the gateway's pickup of its
site's commands (gateway token: only the devices of the token's site)."""

from __future__ import annotations

import re
import threading
import time
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as FastPath
from pydantic import BaseModel, Field
from sqlmodel import Session

from contract.protocol import SITE_PATTERN
from server.api.deps import (
    Caller,
    DeviceId,
    GatewayDep,
    OperatorDep,
    SessionDep,
    ViewerDep,
)
from server.api.scope import check_site
from server.db.engine import writing
from server.fleet import config, keys
from server.fleet.command_queue import device_site, issue, pickup, site_devices
from server.fleet.commands import BadSetting, TooLarge
from server.models.fleet import CommandKind
from server.schemas import Message

router = APIRouter(prefix="/api/v1", tags=["fleet"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site does not allow this"},
    404: {"model": Message, "description": "no such device"},
    422: {"model": Message, "description": "a setting that cannot be set, or a bad value"},
}
# Where a gateway serves release files: http(s)://host[:port], no path, no credentials.
FW_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]{1,200}$")
_KEY_LOCK = threading.Lock()


class CommandKey:
    """The command key, read (or made) on first use, once per app: a request that signs
    nothing never touches the key file."""

    def __init__(self, request: Request) -> None:
        self.app = request.app

    def __call__(self) -> Ed25519PrivateKey:
        with _KEY_LOCK:
            key: Ed25519PrivateKey | None = getattr(self.app.state, "command_key", None)
            if key is None:
                key = keys.load_or_create(keys.command_key_path(self.app.state.settings))
                self.app.state.command_key = key
            return key


KeyDep = Annotated[CommandKey, Depends(CommandKey)]


def _site_of(session: Session, caller: Caller, device: str) -> str:
    """The device's site: 404 unknown (or revoked), 403 another site's for a limited caller."""
    site = device_site(session, device)
    if site is None:
        raise HTTPException(404, f"no device {device!r} is registered or has sent anything")
    check_site(caller, site, f"device {device} (site {site})")
    return site


@router.get(
    "/devices/{device}/config", response_model=config.DeviceConfig, responses=ERRORS,
    summary="A device's desired and reported config, and the drift between them",
)  # fmt: skip
def get_config(device: DeviceId, session: SessionDep, caller: ViewerDep) -> config.DeviceConfig:
    site = _site_of(session, caller, device)
    return config.view(session, device=device, site=site)


def _queue(session: Session, make: Any) -> config.Queued:
    try:
        with writing(session):
            command = make()
            session.commit()
    except (BadSetting, TooLarge) as err:
        session.rollback()
        raise HTTPException(422, str(err)) from None
    return config.queued(command)


@router.put(
    "/devices/{device}/config", response_model=config.Queued, responses=ERRORS,
    summary="Change a device's desired config: queues a signed config command",
)  # fmt: skip
def put_config(
    device: DeviceId, change: config.ConfigChange, session: SessionDep, caller: OperatorDep,
    key: KeyDep,
) -> config.Queued:  # fmt: skip
    site = _site_of(session, caller, device)
    return _queue(
        session,
        lambda: config.change(
            session, key=key(), device=device, site=site, partial=change.set, by=caller.name,
            now=time.time(),
        ),
    )  # fmt: skip


@router.post(
    "/devices/{device}/reboot", response_model=config.Queued, responses=ERRORS,
    summary="Queue a signed reboot command",
)  # fmt: skip
def reboot(
    device: DeviceId, session: SessionDep, caller: OperatorDep, key: KeyDep
) -> config.Queued:
    site = _site_of(session, caller, device)
    return _queue(
        session,
        lambda: issue(
            session, key=key(), device=device, site=site, kind=CommandKind.REBOOT, body={},
            by=caller.name, now=time.time(), exp=time.time() + REBOOT_VALID_S,
        ),
    )  # fmt: skip


# A reboot still queued a day later (device offline) is no longer wanted.
REBOOT_VALID_S = 24 * 3600


class GatewayCommand(BaseModel):
    id: int
    device: str
    n: int
    payload: str = Field(description="the signed cmd message to publish, as is")


class GatewayCommands(BaseModel):
    """`GET /api/v1/gateway/commands`."""

    commands: list[GatewayCommand]


@router.get(
    "/gateway/commands", response_model=GatewayCommands, responses=ERRORS,
    summary="The commands for this gateway's site after a command id (gateway token)",
)  # fmt: skip
def gateway_commands(
    session: SessionDep,
    caller: GatewayDep,
    key: KeyDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    fw_url: Annotated[
        str | None,
        Query(
            max_length=200,
            description="where this gateway serves release files",
            examples=["http://192.168.1.10:8070"],
        ),
    ] = None,  # fmt: skip
) -> GatewayCommands:
    if fw_url is not None and not FW_URL.match(fw_url):
        raise HTTPException(422, "fw_url: must be http(s)://host[:port] with no path")
    assert caller.site is not None  # gateway tokens always have one (deps)
    with writing(session):
        found = pickup(session, key=key, site=caller.site, after=after, fw_url=fw_url)
        session.commit()
    return GatewayCommands(
        commands=[
            GatewayCommand(id=c.id or 0, device=c.device, n=c.n, payload=c.payload or "")
            for c in found
        ]
    )


class SiteChange(BaseModel):
    set: dict[str, Any] = Field(examples=[{"timeouts": {"prompt_s": 20}}])


@router.put(
    "/sites/{site}/config", response_model=list[config.Queued], responses=ERRORS,
    summary="Change a site's default config: each of its devices gets a signed config command",
)  # fmt: skip
def put_site_config(
    site: Annotated[str, FastPath(pattern=SITE_PATTERN)], change: SiteChange,
    session: SessionDep, caller: OperatorDep, key: KeyDep,
) -> list[config.Queued]:  # fmt: skip
    check_site(caller, site, f"site {site}")
    try:
        with writing(session):
            commands = config.change_site(
                session, key=key(), site=site, partial=change.set,
                devices=site_devices(session, site), by=caller.name, now=time.time(),
            )  # fmt: skip
            session.commit()
    except (BadSetting, TooLarge) as err:
        session.rollback()
        raise HTTPException(422, str(err)) from None
    return [config.queued(c) for c in commands]
