"""The dashboard login's rate limit: so many failed logins per client address in a
sliding window, then 429 with Retry-After until the oldest failure leaves the window.

`LoginLimiter` is what the login route needs; `TableLimiter` keeps the failures in
the database, shared by every server worker.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Protocol

from sqlalchemy import Engine, delete, select, text
from sqlmodel import Session

from server.db.engine import write_session
from server.db.sql import table_of
from server.models import LoginFailure

# Where a client holds a whole IPv6 /64 (RFC 4291 section 2.5.4: the usual subnet
# size), counting per address would give it 2^64 fresh starts.
IPV6_PREFIX = 64
FAILURE = table_of(LoginFailure).c


def limit_key(address: str) -> str:
    """What the limit counts by: the IPv4 address, or the IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:128]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


class LoginLimiter(Protocol):
    max_failures: int
    window_s: float

    def reserve(self, key: str, *, now: float) -> float:
        """The seconds until `key` may try to log in; when 0, this try is recorded as a
        failure in the same transaction, so tries sent at once cannot all pass the check."""
        ...

    def forgive(self, key: str, *, now: float) -> None:
        """Take back the failure `reserve` recorded at `now`: the login succeeded."""
        ...


def retry_after(wait_s: float) -> str:
    """A Retry-After value (RFC 9110 section 10.2.3: whole seconds), never 0."""
    return str(max(1, math.ceil(wait_s)))


class TableLimiter:
    """Failures in the `login_failure` table, so every server worker sees the same count."""

    def __init__(self, engine: Engine, *, max_failures: int, window_s: float) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window_s = window_s

    def _wait(self, session: Session, key: str, now: float) -> float:
        recent = (
            session.execute(
                select(FAILURE.at)
                .where(FAILURE.key == key[:128], FAILURE.at > now - self.window_s)
                .order_by(FAILURE.at.desc())
                .limit(self.max_failures)
            )
            .scalars()
            .all()
        )
        if len(recent) < self.max_failures:
            return 0.0
        return recent[-1] + self.window_s - now

    def reserve(self, key: str, *, now: float) -> float:
        with write_session(self.engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                # Writers there do not queue: one key's checks wait for each other.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key[:128]}
                )
            wait = self._wait(session, key, now)
            if wait > 0:
                return wait
            self._record(session, key, now)
            return 0.0

    def forgive(self, key: str, *, now: float) -> None:
        with write_session(self.engine) as session:
            one = (
                select(FAILURE.id)
                .where(FAILURE.key == key[:128], FAILURE.at == now)
                .limit(1)
                .scalar_subquery()
            )
            session.execute(delete(LoginFailure).where(FAILURE.id == one))
            session.commit()

    def _record(self, session: Session, key: str, now: float) -> None:
        """Record a failure, and drop every failure that has left the window (the table
        stays as small as the failures of the last `window_s`)."""
        session.add(LoginFailure(key=key[:128], at=now))
        session.execute(delete(LoginFailure).where(FAILURE.at <= now - self.window_s))
        session.commit()
