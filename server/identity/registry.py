"""The device registry: register, list and revoke devices; their broker passwords as hashes.

A device's clear password is returned once by `add_device` and never stored:
the row keeps Mosquitto's own `$7$` password-file entry, so `nps-edge broker
config` writes the broker's password file without knowing the password.

Exceptions: `RegistryError` (a `ValueError`) is the base of `BadDeviceId`,
`BadSite`, `DeviceExists` and `UnknownDevice`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

from sqlalchemy import select
from sqlmodel import Session

from contract.protocol import DEVICE_ID_PATTERN, SITE_PATTERN
from server.db.sql import table_of
from server.models import RegisteredDevice

REGISTERED = table_of(RegisteredDevice).c
DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
SITE_RE = re.compile(SITE_PATTERN)
# Mosquitto 2.0's password_file format for PBKDF2-SHA512 (mosquitto_passwd's
# default): 12 random salt bytes, a 64-byte hash, 101 iterations by default.
SALT_BYTES = 12
HASH_BYTES = 64
DEFAULT_ITERATIONS = 101


class RegistryError(ValueError):
    """Base of the registry's errors: bad input the caller can correct."""


class BadDeviceId(RegistryError):
    pass


class BadSite(RegistryError):
    pass


class DeviceExists(RegistryError):
    pass


class UnknownDevice(RegistryError):
    pass


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """`$7$<iterations>$<b64 salt>$<b64 hash>`: the line Mosquitto's password file holds."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode('ascii')}${b64(digest).decode('ascii')}"


def check_site(site: str) -> str:
    """The site, if it matches the contract's pattern; `BadSite` otherwise."""
    if not SITE_RE.fullmatch(site):
        raise BadSite(f"site {site[:70]!r} does not match {SITE_PATTERN}")
    return site


def add_device(
    session: Session, *, site: str, device_id: str | None = None
) -> tuple[RegisteredDevice, str]:
    """Register a device to `site`; returns the row and its clear password (shown once)."""
    check_site(site)
    if device_id is None:
        device_id = "nps-" + secrets.token_hex(3)
    elif not DEVICE_RE.fullmatch(device_id):
        raise BadDeviceId(f"device id {device_id[:70]!r} does not match {DEVICE_ID_PATTERN}")
    if session.get(RegisteredDevice, device_id) is not None:
        raise DeviceExists(f"device {device_id} is already registered")
    # 32 url-safe characters: 192 random bits, typed into a provisioning tool, not by hand.
    password = secrets.token_urlsafe(24)
    row = RegisteredDevice(
        device=device_id,
        site=site,
        username=device_id,
        password_hash=mosquitto_hash(password),
        created_at=time.time(),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, password


def list_devices(session: Session, *, site: str | None = None) -> list[RegisteredDevice]:
    """Registered devices (revoked ones too), by id; only `site`'s when given."""
    query = select(RegisteredDevice).order_by(REGISTERED.device)
    if site is not None:
        query = query.where(REGISTERED.site == site)
    return list(session.execute(query).scalars())


def revoke_device(session: Session, *, device_id: str) -> RegisteredDevice:
    """Mark a device revoked (idempotent: a second revoke keeps the first time)."""
    row = session.get(RegisteredDevice, device_id)
    if row is None:
        raise UnknownDevice(f"no registered device {device_id[:70]!r}")
    if row.revoked_at is None:
        row.revoked_at = time.time()
        session.add(row)
        session.commit()
        session.refresh(row)
    return row
