"""Staged rollout: a release goes to a cohort that widens step by step (5, 25, 50, 100 % of
what was asked), each step once the cohort gave `step_answers` answers on the new firmware
and its canary (`canary.judge`) did not halt it. `plan` and `order` are pure."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlmodel import Session

from server.alerts.rules import OpenedAlert, ProposedAlert
from server.alerts.store import insert as insert_alerts
from server.db.sql import table_of
from server.fleet import canary
from server.fleet.command_queue import device_site, issue, site_devices
from server.fleet.releases import update_body
from server.models import Device, Feedback, RegisteredDevice, Release, Rollout, RolloutDevice
from server.models.alerts import AlertKind, AlertStatus
from server.models.fleet import CommandKind, RolloutState

LADDER = (5, 25, 50, 100)
FB = table_of(Feedback).c
RD = table_of(RolloutDevice).c
RO = table_of(Rollout).c


class RolloutError(ValueError):
    """A rollout that cannot start; the message says why."""


@dataclass(frozen=True)
class Target:
    """What the operator asked: a percent of the fleet, one site, or a device list."""

    percent: int = 100
    site: str | None = None
    devices: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"percent": self.percent, "site": self.site, "devices": list(self.devices)}


def plan(population: int, percent: int) -> list[int]:
    """Cohort sizes after each step: the ladder up to `percent` of `population`, at least 1."""
    sizes: list[int] = []
    for rung in LADDER:
        size = max(1, math.ceil(population * min(rung, percent) / 100))
        if not sizes or size > sizes[-1]:
            sizes.append(min(size, population))
        if rung >= percent:
            break
    return sizes


def order(devices: list[str], version: str) -> list[str]:
    """A stable pseudo-random order per release: the same devices first on every rerun."""
    return sorted(devices, key=lambda d: hashlib.sha256(f"{version} {d}".encode()).digest())


def population(session: Session, *, target: Target, version: str) -> list[str]:
    """The devices the rollout may reach: asked for, not revoked, not on `version` yet."""
    dev = table_of(Device).c
    reg = table_of(RegisteredDevice).c
    if target.devices:
        ids = [d for d in target.devices if device_site(session, d) is not None]
    elif target.site is not None:
        ids = site_devices(session, target.site)
    else:
        known = set(session.execute(select(dev.id)).scalars()) | set(
            session.execute(select(reg.device)).scalars()
        )
        revoked = set(
            session.execute(select(reg.device).where(reg.revoked_at.is_not(None))).scalars()
        )
        ids = sorted(known - revoked)
    fw = dict(session.execute(select(dev.id, dev.fw).where(dev.id.in_(ids))).all())
    return [d for d in ids if fw.get(d) != version]


def start(
    session: Session, *, key: Ed25519PrivateKey, version: str, target: Target,
    step_answers: int, by: str, now: float | None = None,
) -> Rollout:  # fmt: skip
    """Plan the rollout and send the first step's update commands. Caller commits."""
    now = time.time() if now is None else now
    release = session.get(Release, version)
    if release is None:
        raise RolloutError(f"no release {version}: `nps-edge release create` first")
    rolling = session.execute(
        select(RO.version).where(RO.state == RolloutState.ROLLING)
    ).scalar_one_or_none()
    if rolling is not None:
        raise RolloutError(f"release {rolling} is rolling out; one rollout at a time")
    devices = order(population(session, target=target, version=version), version)
    if not devices:
        raise RolloutError("no device to update: none asked for, or all run it already")
    steps = plan(len(devices), target.percent)
    rollout = Rollout(
        version=version, target=target.as_json() | {"order": devices}, steps=steps,
        step_answers=step_answers, started_at=now, step_at=now, created_by=by,
    )  # fmt: skip
    session.add(rollout)
    session.flush()
    _widen(session, key=key, rollout=rollout, release=release, now=now)
    return rollout


def _widen(
    session: Session, *, key: Ed25519PrivateKey, rollout: Rollout, release: Release, now: float
) -> None:
    """Bring the cohort to its current step's size: an update command for each new device."""
    assert rollout.id is not None
    have = set(session.execute(select(RD.device).where(RD.rollout_id == rollout.id)).scalars())
    wanted = rollout.target["order"][: rollout.steps[rollout.step]]
    for device in wanted:
        if device in have:
            continue
        site = device_site(session, device)
        if site is None:  # revoked since
            continue
        command = issue(
            session, key=key, device=device, site=site, kind=CommandKind.UPDATE,
            body=update_body(release), by=rollout.created_by, now=now, version=release.version,
        )  # fmt: skip
        session.add(
            RolloutDevice(rollout_id=rollout.id, device=device, step=rollout.step,
                          command_id=command.id, at=now)
        )  # fmt: skip
    session.flush()


def cohort(session: Session, rollout_id: int) -> list[str]:
    return sorted(session.execute(select(RD.device).where(RD.rollout_id == rollout_id)).scalars())


def _answers(session: Session, *, devices: list[str], version: str, since: float) -> int:
    return int(
        session.execute(
            select(func.count()).where(
                FB.device.in_(devices), FB.fw == version, FB.t >= since, FB.score.is_not(None)
            )
        ).scalar_one()
    )


def rolling(session: Session) -> bool:
    """Whether any rollout is rolling (the periodic check has work)."""
    return (
        session.execute(select(RO.id).where(RO.state == RolloutState.ROLLING).limit(1)).first()
        is not None
    )


def tick(
    session: Session, *, key: Ed25519PrivateKey, now: float | None = None
) -> list[OpenedAlert]:
    """Judge every rolling rollout: halt it (and raise a canary alert) on a bad canary, else
    widen it when its step has enough answers, or finish it. Caller commits."""
    now = time.time() if now is None else now
    opened: list[OpenedAlert] = []
    rolling = session.execute(select(Rollout).where(RO.state == RolloutState.ROLLING)).scalars()
    for rollout in list(rolling):
        assert rollout.id is not None
        members = cohort(session, rollout.id)
        measured = canary.measure(
            session, version=rollout.version, cohort=members, lo=rollout.started_at, hi=now
        )
        verdict = canary.judge(*measured)
        rollout.canary = canary.figures(*measured, verdict, lo=rollout.started_at, hi=now)
        if verdict.halt:
            rollout.state, rollout.reason = RolloutState.HALTED, verdict.reason
            rollout.ended_at = now
            opened += insert_alerts(session, [_alert(rollout, now)])
            continue
        answers = _answers(session, devices=members, version=rollout.version, since=rollout.step_at)
        if answers < rollout.step_answers:
            continue
        if rollout.step + 1 < len(rollout.steps):
            rollout.step += 1
            rollout.step_at = now
            release = session.get(Release, rollout.version)
            assert release is not None
            _widen(session, key=key, rollout=rollout, release=release, now=now)
        else:
            rollout.state, rollout.ended_at = RolloutState.DONE, now
    session.flush()
    return opened


def _alert(rollout: Rollout, now: float) -> ProposedAlert:
    site = rollout.target.get("site")
    return ProposedAlert(
        status=AlertStatus.OPEN, site=site, device=None, feedback_id=None, assignee=None,
        kind=AlertKind.CANARY,
        title=f"rollout of {rollout.version} halted by its canary: {rollout.reason}",
        detail={"rollout": rollout.id, "version": rollout.version, "canary": rollout.canary},
        created_at=now, updated_at=now, started_at=now,
    )  # fmt: skip


def halt(session: Session, *, version: str, reason: str, rolled_back: bool, now: float) -> Rollout:
    """An operator stops the rollout of `version` (rolled_back: its cohort was sent back)."""
    rollout = session.execute(
        select(Rollout).where(RO.version == version).order_by(RO.id.desc()).limit(1)
    ).scalar_one_or_none()
    if rollout is None:
        raise RolloutError(f"release {version} has no rollout")
    rollout.state = RolloutState.ROLLED_BACK if rolled_back else RolloutState.HALTED
    rollout.reason, rollout.ended_at = reason, now
    return rollout


def adopt(
    session: Session, *, version: str, cohort: list[str], population: int, started_at: float,
    step_answers: int, by: str,
) -> Rollout:  # fmt: skip
    """Record a rollout whose cohort got `version` outside this server (imported history,
    the demo's story): no commands are sent; the canary judges it like any other."""
    if session.get(Release, version) is None:
        raise RolloutError(f"no release {version}: `nps-edge release create` first")
    order = sorted(cohort)
    rollout = Rollout(
        version=version, target={"percent": 100, "site": None, "devices": [], "order": order},
        steps=[len(order), max(population, len(order))], step_answers=step_answers,
        started_at=started_at, step_at=started_at, created_by=by,
    )  # fmt: skip
    session.add(rollout)
    session.flush()
    assert rollout.id is not None
    session.add_all(
        RolloutDevice(rollout_id=rollout.id, device=d, step=0, at=started_at) for d in order
    )
    session.flush()
    return rollout
