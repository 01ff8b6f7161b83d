"""The dashboard login's rate limit: so many failed logins per client address in a
sliding window, then 429 with Retry-After until the oldest failure leaves the window.

`LoginLimiter` is what the login route needs; `MemoryLimiter` keeps the failures in
this process (tests, a single worker).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import deque
from typing import Protocol

# Where a client holds a whole IPv6 /64 (RFC 4291 section 2.5.4: the usual subnet
# size), counting per address would give it 2^64 fresh starts.
IPV6_PREFIX = 64
MAX_KEYS = 100_000  # bounds the memory an address-hopping attacker can take


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

    def wait_s(self, key: str, *, now: float) -> float:
        """0 when `key` may try to log in now, else the seconds until it may."""
        ...

    def failed(self, key: str, *, now: float) -> None:
        """Record one failed login of `key` at `now`."""
        ...


def retry_after(wait_s: float) -> str:
    """A Retry-After value (RFC 9110 section 10.2.3: whole seconds), never 0."""
    return str(max(1, math.ceil(wait_s)))


class MemoryLimiter:
    """Failures in this process's memory; thread-safe (sync routes run in a pool)."""

    def __init__(self, *, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, key: str, *, now: float) -> float:
        with self._lock:
            times = self._recent(key, now)
            if len(times) < self.max_failures:
                return 0.0
            return times[-self.max_failures] + self.window_s - now

    def failed(self, key: str, *, now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            if len(self._failures) > MAX_KEYS:
                self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop keys with no failure in the window, then the stalest until under the bound."""
        for key in [k for k, t in self._failures.items() if not self._recent(k, now)]:
            del self._failures[key]
        while len(self._failures) > MAX_KEYS:
            del self._failures[min(self._failures, key=lambda k: self._failures[k][-1])]
