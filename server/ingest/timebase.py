"""When an event happened: `ts` when the device knew the time, else rebuilt (pure).

Rule (docs/server.md): events of one device and one boot share a boot start.
- An event with `ts` gives an exact start `ts - up_ms/1000`; of several, the one
  with the largest `up_ms` wins (the most recently set clock).
- Without any, every event gives an upper bound `rx_ts - up_ms/1000` (it cannot
  have been received before it was made); the estimate is the smallest bound
  seen so far, across batches.
- An event without `ts` is then at `start + up_ms/1000`. Times are fixed when the
  event is stored; a better anchor found later serves later events only.
- A `ts` outside the plausible window (`plausible_ts`) is a clock gone wrong and
  counts as unset: it anchors nothing and the event's time is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

# The plausible window (docs/server.md): nps-edge shipped in 2026, so no device
# clock reads earlier than 2020 unless it was never set (1970) or drifted; a
# clock may run ahead of the gateway's by a day at most (time zones, skew).
TS_MIN = 1_577_836_800.0  # 2020-01-01T00:00:00Z
AHEAD_S = 86_400.0


def plausible_ts(ts: float, rx_ts: float) -> bool:
    """Whether a device's `ts` is believable given when its gateway received it."""
    return TS_MIN <= ts <= rx_ts + AHEAD_S


def plausible_rx_ts(rx_ts: float, now: float) -> bool:
    """Whether a gateway's `rx_ts` is believable given the server's clock."""
    return TS_MIN <= rx_ts <= now + AHEAD_S


def usable_ts(ev: Timed) -> float | None:
    """The event's `ts` if it is set and plausible, else None (rebuild the time)."""
    ts = ev.ts
    return ts if ts is not None and plausible_ts(ts, ev.rx_ts) else None


class Anchor(NamedTuple):
    start: float
    exact: bool
    up_ms: int = 0  # of the event an exact anchor came from


class Timed(Protocol):
    """What the rule needs of an event (a forwarded event has all of it)."""

    @property
    def device(self) -> str: ...
    @property
    def boot(self) -> int: ...
    @property
    def up_ms(self) -> int: ...
    @property
    def ts(self) -> float | None: ...
    @property
    def rx_ts(self) -> float: ...


def merge(old: Anchor | None, new: Anchor) -> Anchor:
    if old is None:
        return new
    if old.exact and new.exact:
        return new if new.up_ms >= old.up_ms else old
    if old.exact or new.exact:
        return old if old.exact else new
    return old if old.start <= new.start else new


def anchors(
    events: Iterable[Timed], known: dict[tuple[str, int], Anchor]
) -> dict[tuple[str, int], Anchor]:
    """Boot starts after seeing `events`, for every (device, boot) they touch."""
    out: dict[tuple[str, int], Anchor] = {}
    for ev in events:
        key = (ev.device, ev.boot)
        ts = usable_ts(ev)
        if ts is not None:
            cand = Anchor(ts - ev.up_ms / 1000.0, True, ev.up_ms)
        else:
            cand = Anchor(ev.rx_ts - ev.up_ms / 1000.0, False)
        out[key] = merge(out.get(key, known.get(key)), cand)
    return out


def event_time(ev: Timed, anchor: Anchor) -> tuple[float, str]:
    """(time, source): source is 'ts', 'boot' (exact anchor) or 'rx' (estimated)."""
    ts = usable_ts(ev)
    if ts is not None:
        return ts, "ts"
    return anchor.start + ev.up_ms / 1000.0, "boot" if anchor.exact else "rx"
