"""The device registry: which site a device belongs to and its broker login (hash only)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class RegisteredDevice(SQLModel, table=True):
    """A device known before it speaks; `password_hash` is a Mosquitto `$7$` password-file entry."""

    __tablename__ = "registered_device"

    device: str = Field(primary_key=True, max_length=64)
    site: str = Field(max_length=64, index=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    created_at: float
    revoked_at: float | None = None


class RegisteredDevicePublic(SQLModel):
    """A registry row as `device list` shows it: never the hash."""

    device: str
    site: str
    username: str
    created_at: float
    revoked_at: float | None
