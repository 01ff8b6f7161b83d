"""Devices (one row each, with running counters), their boots and their presence."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class Device(SQLModel, table=True):
    """Counters are maintained at ingest so the fleet list never scans events."""

    __tablename__ = "device"

    id: str = Field(primary_key=True, max_length=64)
    site: str = Field(max_length=64, index=True)
    fw: str = Field(max_length=64)
    gateway: str | None = Field(default=None, max_length=64)
    boot: int = Field(default=0, sa_type=BigInteger)
    first_seen: float
    last_seen: float
    max_seq: int = Field(default=0, sa_type=BigInteger)
    received: int = Field(default=0, sa_type=BigInteger)
    health_t: float | None = None
    battery_mv: float | None = None
    rssi: float | None = None
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    shown: int = 0
    online: bool | None = None
    presence_ts: float | None = None


class BootRecord(SQLModel, table=True):
    """When a boot started (the time anchor for events without `ts`) and its error high mark."""

    __tablename__ = "boot"

    device: str = Field(primary_key=True, max_length=64)
    boot: int = Field(primary_key=True, sa_type=BigInteger)
    start: float
    exact: bool = False
    anchor_up_ms: int = Field(default=0, sa_type=BigInteger)
    errors_max: int = Field(default=0, sa_type=BigInteger)


class BootSampling(SQLModel, table=True):
    """The highest total a boot reported of host transactions it did not prompt, by why
    (`sampled_out`, `throttled`, `expired`): what a later reading's total is counted from
    (`server.ingest.unprompted`)."""

    __tablename__ = "boot_sampling"

    device: str = Field(primary_key=True, max_length=64)
    boot: int = Field(primary_key=True, sa_type=BigInteger)
    reason: str = Field(primary_key=True, max_length=32)
    seen: int = Field(default=0, sa_type=BigInteger)


class Presence(SQLModel, table=True):
    __tablename__ = "presence"
    __table_args__ = (Index("ix_presence_device_rx_ts", "device", "rx_ts"),)

    id: int | None = Field(default=None, primary_key=True)
    device: str = Field(max_length=64)
    online: bool
    fw: str | None = Field(default=None, max_length=64)
    boot: int | None = Field(default=None, sa_type=BigInteger)
    rx_ts: float
    gateway: str = Field(max_length=64)
