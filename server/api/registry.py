"""`/api/v1/registry/devices`: the device registry for admins (server/identity/registry.py).

Adding a device answers its broker password once; only its hash is stored. A
site-limited admin sees, adds and revokes only its own site's devices.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from contract.protocol import DEVICE_ID_PATTERN, SITE_PATTERN
from server.api.deps import AdminDep, DeviceId, SessionDep
from server.api.scope import check_site, site_for
from server.db.engine import write_session
from server.identity import registry
from server.models import Device
from server.models.registry import RegisteredDevice, RegisteredDevicePublic
from server.schemas import Message

router = APIRouter(prefix="/api/v1/registry/devices", tags=["registry"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "not an admin, or an admin of another site"},
    422: {"model": Message, "description": "a bad parameter or body"},
}
EXAMPLE = {
    "device": "nps-a1b2c3", "site": "store-12", "username": "nps-a1b2c3",
    "created_at": 1795000000.0, "revoked_at": None,
}  # fmt: skip


class NewDevice(BaseModel):
    site: str = Field(pattern=SITE_PATTERN, examples=["store-12"])
    device: str | None = Field(
        default=None,
        pattern=DEVICE_ID_PATTERN,
        description="the device id; default `nps-` and 6 random hex digits",
        examples=["nps-a1b2c3"],
    )


class Registered(RegisteredDevicePublic):
    """A new registry entry with its broker password: shown this once, never stored."""

    password: str = Field(description="the device's broker password; only its hash is kept")


def _public(row: RegisteredDevice) -> RegisteredDevicePublic:
    return RegisteredDevicePublic.model_validate(row, from_attributes=True)


@router.get(
    "",
    response_model=list[RegisteredDevicePublic],
    responses=ERRORS,
    summary="Registered devices, revoked ones too, by id",
)
def registered(
    session: SessionDep,
    caller: AdminDep,
    site: Annotated[str | None, Query(max_length=64, examples=["store-12"])] = None,
) -> list[RegisteredDevicePublic]:
    return [_public(r) for r in registry.list_devices(session, site=site_for(caller, site))]


@router.post(
    "",
    response_model=Registered,
    status_code=201,
    responses=ERRORS | {409: {"model": Message, "description": "that id is already registered"}},
    summary="Register a device: answers its broker password, once",
)
def add(body: NewDevice, request: Request, caller: AdminDep) -> Registered:
    site = site_for(caller, body.site)
    assert site is not None  # site_for keeps an asked site
    try:
        with write_session(request.app.state.engine) as session:
            if caller.site is not None and body.device is not None:
                # Registering overrides where a device was first seen (server/ingest/binding.py):
                # a site-limited admin may not take another site's device that way.
                seen = session.get(Device, body.device)
                if seen is not None:
                    check_site(caller, seen.site, f"device {body.device} (site {seen.site})")
            row, password = registry.add_device(session, site=site, device_id=body.device)
    except registry.DeviceExists as err:
        raise HTTPException(409, str(err)) from None
    except IntegrityError:  # registered by a concurrent request since the check
        raise HTTPException(409, f"device {body.device} is already registered") from None
    except registry.RegistryError as err:
        raise HTTPException(422, str(err)) from None
    return Registered(**_public(row).model_dump(), password=password)


@router.post(
    "/{device}/revoke",
    response_model=RegisteredDevicePublic,
    responses=ERRORS | {404: {"model": Message, "description": "no such registered device"}},
    summary="Revoke a device's broker login (takes effect when the broker config is written again)",
)
def revoke(device: DeviceId, request: Request, caller: AdminDep) -> RegisteredDevicePublic:
    with write_session(request.app.state.engine) as session:
        row = session.get(RegisteredDevice, device)
        if row is None:
            raise HTTPException(404, f"no registered device {device!r}")
        check_site(caller, row.site, f"device {device} (site {row.site})")
        return _public(registry.revoke_device(session, device_id=device))
