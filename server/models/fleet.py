"""The fleet (issue 14): desired and reported config, signed commands, releases, rollouts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class CommandKind(StrEnum):
    """What a `cmd` message asks of a device (docs/protocol.md, "cmd")."""

    CONFIG = "config"
    REBOOT = "reboot"
    UPDATE = "update"


class RolloutState(StrEnum):
    """Where a rollout is (`server.fleet.rollout`); the value is stored and shown."""

    ROLLING = "rolling"
    HALTED = "halted"
    DONE = "done"
    ROLLED_BACK = "rolled_back"


class FleetDevice(SQLModel, table=True):
    """One device's desired config (version and the partial config that makes it), the last
    command number issued to it, and what its status last reported."""

    __tablename__ = "fleet_device"

    device: str = Field(primary_key=True, max_length=64)
    site: str = Field(max_length=64, index=True)
    desired_cfg: int = Field(default=0, sa_type=BigInteger)
    desired: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    desired_at: float | None = None
    desired_by: str | None = Field(default=None, max_length=128)
    last_n: int = Field(default=0, sa_type=BigInteger)
    reported_cfg: int | None = Field(default=None, sa_type=BigInteger)
    reported_cmd: int | None = Field(default=None, sa_type=BigInteger)
    cmd_error: str | None = Field(default=None, max_length=64)
    update_state: str | None = Field(default=None, max_length=64)
    reported_at: float | None = None


class SiteConfig(SQLModel, table=True):
    """A site's default partial config: merged under each device's own when it is sent."""

    __tablename__ = "site_config"

    site: str = Field(primary_key=True, max_length=64)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: float
    updated_by: str = Field(max_length=128)


class FleetCommand(SQLModel, table=True):
    """A command for one device. `payload` is the signed `cmd` message; an update's is
    signed when its site's gateway first fetches it (the URL names that gateway)."""

    __tablename__ = "fleet_command"
    __table_args__ = (
        UniqueConstraint("device", "n", name="uq_fleet_command_device_n"),
        Index("ix_fleet_command_site_id", "site", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device: str = Field(max_length=64)
    site: str = Field(max_length=64)
    n: int = Field(sa_type=BigInteger)
    kind: str = Field(max_length=16)
    version: str | None = Field(default=None, max_length=32)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    payload: str | None = None
    exp: float | None = None
    created_at: float
    created_by: str = Field(max_length=128)


class GatewaySite(SQLModel, table=True):
    """Where a site's gateway serves release files to its devices (it says so when it polls)."""

    __tablename__ = "gateway_site"

    site: str = Field(primary_key=True, max_length=64)
    fw_url: str = Field(max_length=255)
    seen_at: float


class Release(SQLModel, table=True):
    """A signed firmware bundle: manifest.json exactly as signed, its signature and hash."""

    __tablename__ = "release"

    version: str = Field(primary_key=True, max_length=32)
    board: str = Field(max_length=64)
    manifest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: str = Field(max_length=128)
    manifest_sha256: str = Field(max_length=64)
    files: int
    size: int = Field(sa_type=BigInteger)
    created_at: float


class ReleaseFile(SQLModel, table=True):
    __tablename__ = "release_file"

    version: str = Field(primary_key=True, max_length=32)
    path: str = Field(primary_key=True, max_length=255)
    sha256: str = Field(max_length=64)
    size: int = Field(sa_type=BigInteger)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Rollout(SQLModel, table=True):
    """A release going out in steps; `target` is what the operator asked (percent, site or
    devices), `steps` the cohort size after each step, `canary` the last comparison."""

    __tablename__ = "rollout"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=32, index=True)
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    steps: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    step: int = 0
    step_answers: int
    state: str = Field(default=RolloutState.ROLLING, max_length=16)
    reason: str | None = None
    canary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: float
    step_at: float
    ended_at: float | None = None
    created_by: str = Field(max_length=128)


class RolloutDevice(SQLModel, table=True):
    """A device in a rollout's cohort, from the step that added it."""

    __tablename__ = "rollout_device"

    rollout_id: int = Field(foreign_key="rollout.id", ondelete="CASCADE", primary_key=True)
    device: str = Field(primary_key=True, max_length=64)
    step: int
    command_id: int | None = None
    at: float
