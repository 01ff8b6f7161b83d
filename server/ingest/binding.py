"""Site binding: which site's gateway may speak for a device (issue 12, docs/server.md).

A gateway token belongs to one site. A device belongs to the site it is
registered to (`nps-edge device add`), or, when it is not registered, to the
site of the gateway that first delivered one of its events. Ingest and presence
look the batch's devices up here in one query and refuse, per event, what
another site's gateway sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import literal, select, union_all
from sqlmodel import Session

from server.db.listed import dialect_of, listed
from server.db.sql import table_of
from server.models import Device, RegisteredDevice

REG = table_of(RegisteredDevice).c
DEV = table_of(Device).c


@dataclass
class Known:
    """What the database says of some devices: registry entries and first-seen sites."""

    registered: dict[str, str] = field(default_factory=dict)  # device -> site
    revoked: set[str] = field(default_factory=set)
    seen: dict[str, str] = field(default_factory=dict)  # device -> its Device row's site

    def bound(self, device: str) -> bool:
        return device in self.registered or device in self.seen


def lookup(session: Session, devices: Iterable[str]) -> Known:
    """The registry entries and device rows of `devices`, in one statement."""
    ids = sorted(set(devices))
    known = Known()
    if not ids:
        return known
    for kind, device, site, revoked in session.execute(_lookup(dialect_of(session)), {"ids": ids}):
        if kind == "r":
            known.registered[device] = site
            if revoked:
                known.revoked.add(device)
        else:
            known.seen[device] = site
    return known


@cache
def _lookup(dialect: str) -> Any:
    return union_all(
        select(literal("r"), REG.device, REG.site, REG.revoked_at.is_not(None)).where(
            listed(REG.device, "ids", dialect)
        ),
        select(literal("d"), DEV.id, DEV.site, literal(False)).where(
            listed(DEV.id, "ids", dialect)
        ),
    )


class Refusal(NamedTuple):
    """Why an event or a presence update is refused: `field` labels the counters."""

    field: str  # "site" or "device"
    reason: str


def refusal(device: str, claimed: str | None, *, site: str, known: Known) -> Refusal | None:
    """Why `site`'s gateway may not deliver this device's event (None: it may).

    `claimed` is the event's own `site` field (None for presence, which has none).
    """
    mine = f"{site} (this gateway's site)"
    if device in known.revoked:
        return Refusal("device", f"device: revoked ({device} was revoked from the device registry)")
    registered = known.registered.get(device)
    if registered is not None:
        if registered != site:
            return Refusal(
                "site", f"site: device {device} is registered to site {registered}, not {mine}"
            )
    else:
        first = known.seen.get(device)
        if first is not None and first != site:
            return Refusal(
                "site", f"site: device {device} was first seen through site {first}, not {mine}"
            )
    if claimed is not None and claimed != site:
        return Refusal("site", f"site: event says site {claimed}, not {mine}")
    return None
