"""Device health at the time of an answer: bands and the health state (pure).

Rules (docs/server.md), held in the table below (`RSSI`, `BATTERY`, `FAULTY`,
`DEGRADED`) and served to the dashboard by `GET /api/v1/bands`:
- rssi_band: strong >= -60 dBm, ok >= -75, weak below, none without a reading.
- battery_band: good >= 3700 mV, low >= 3400, critical below, none without one
  (mains powered or unknown).
- health: faulty with >= 10 errors or >= 4 boots started in the previous 24 h,
  a critical battery, or >= 120 min offline; degraded with any error, >= 2 boots
  started (one start a day is an ordinary restart), >= 10 min offline, weak
  Wi-Fi or a low battery; healthy otherwise.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import NamedTuple

DAY_S = 86400.0


@dataclass(frozen=True)
class Bands:
    """The bands of one reading, best first: a reading at or above a band's `floor` is
    in it, below every floor in `below`, and in `none` without a reading."""

    unit: str
    floors: tuple[tuple[str, float], ...]
    below: str

    def of(self, value: float | None) -> str:
        if value is None:
            return "none"
        for name, floor in self.floors:
            if value >= floor:
                return name
        return self.below

    @property
    def names(self) -> tuple[str, ...]:
        return (*(name for name, _ in self.floors), self.below, "none")


@dataclass(frozen=True)
class Limits:
    """What puts a device in a health state: any one of these over the previous 24 h."""

    errors: int
    reboots: int  # boots started (a device's first boot not counted)
    offline_min: float
    rssi_bands: tuple[str, ...]
    battery_bands: tuple[str, ...]


# The one table of thresholds: the dashboard reads it from `GET /api/v1/bands`.
RSSI = Bands("dBm", (("strong", -60), ("ok", -75)), "weak")
BATTERY = Bands("mV", (("good", 3700), ("low", 3400)), "critical")
FAULTY = Limits(errors=10, reboots=4, offline_min=120, rssi_bands=(), battery_bands=("critical",))
DEGRADED = Limits(errors=1, reboots=2, offline_min=10, rssi_bands=("weak",), battery_bands=("low",))

RSSI_BANDS = RSSI.names
BATTERY_BANDS = BATTERY.names
HEALTH_STATES = ("healthy", "degraded", "faulty")


def rssi_band(rssi: float | None) -> str:
    return RSSI.of(rssi)


def battery_band(mv: float | None) -> str:
    return BATTERY.of(mv)


def _meets(
    limits: Limits, errors: int, reboots: int, offline_min: float, rssi_band: str, battery_band: str
) -> bool:
    return (
        errors >= limits.errors
        or reboots >= limits.reboots
        or offline_min >= limits.offline_min
        or rssi_band in limits.rssi_bands
        or battery_band in limits.battery_bands
    )


def health_state(
    *, errors: int, reboots: int, offline_min: float, rssi_band: str, battery_band: str
) -> str:
    if _meets(FAULTY, errors, reboots, offline_min, rssi_band, battery_band):
        return "faulty"
    if _meets(DEGRADED, errors, reboots, offline_min, rssi_band, battery_band):
        return "degraded"
    return "healthy"


class Sample(NamedTuple):
    """A telemetry reading, as the join uses it."""

    t: float
    id: str
    rssi: float | None
    battery_mv: float | None


class Joined(NamedTuple):
    telemetry_id: str | None
    rssi: float | None
    battery_mv: float | None
    errors_24h: int
    reboots_24h: int
    offline_min_24h: float
    rssi_band: str
    battery_band: str
    health: str


@dataclass
class DeviceHistory:
    """One device's history around a batch: samples, error increments, boot starts, presence.

    Every list is sorted by time.
    """

    samples: list[Sample]
    errors: list[tuple[float, int]]
    boot_starts: list[tuple[float, int]]  # (start, boot)
    presence: list[tuple[float, bool]]

    def __post_init__(self) -> None:
        self._sample_times = [s.t for s in self.samples]

    def latest_sample(self, t: float, window_s: float) -> Sample | None:
        i = bisect.bisect_right(self._sample_times, t)
        if i == 0:
            return None
        s = self.samples[i - 1]
        return s if t - s.t <= window_s else None

    def errors_in(self, lo: float, hi: float) -> int:
        if not self.errors:
            return 0
        return sum(n for at, n in self.errors if lo < at <= hi)

    def reboots_in(self, lo: float, hi: float) -> int:
        """Boots started in (lo, hi], the first boot of a device (boot 0) not counted."""
        if not self.boot_starts:
            return 0
        return sum(1 for at, boot in self.boot_starts if lo < at <= hi and boot > 0)

    def offline_minutes(self, lo: float, hi: float) -> float:
        """Minutes in (lo, hi] during which presence said offline (online before any report)."""
        if not self.presence:
            return 0.0
        total = 0.0
        online = True
        since = lo
        for at, state in self.presence:
            if at > hi:
                break
            if at <= lo:
                online = state
                continue
            if not online:
                total += at - since
            online, since = state, at
        if not online:
            total += hi - since
        return total / 60.0


def join(
    t: float,
    history: DeviceHistory,
    *,
    ctx_rssi: float | None,
    ctx_battery_mv: float | None,
    window_s: float,
) -> Joined:
    """The feedback at time `t` joined with the device's health as of `t`.

    The reading the device put in the event (`ctx`) wins over the telemetry
    sample, which only fills what `ctx` lacks.
    """
    sample = history.latest_sample(t, window_s)
    rssi = ctx_rssi if ctx_rssi is not None else (sample.rssi if sample else None)
    battery = (
        ctx_battery_mv if ctx_battery_mv is not None else (sample.battery_mv if sample else None)
    )
    lo = t - DAY_S
    errors = history.errors_in(lo, t)
    reboots = history.reboots_in(lo, t)
    offline = history.offline_minutes(lo, t)
    rb, bb = rssi_band(rssi), battery_band(battery)
    state = health_state(
        errors=errors, reboots=reboots, offline_min=offline, rssi_band=rb, battery_band=bb
    )
    telemetry_id = sample.id if sample else None
    return Joined(telemetry_id, rssi, battery, errors, reboots, round(offline, 3), rb, bb, state)
