"""Judging one forwarded event: the contract (nps_edge.protocol) plus what storage needs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nps_edge.protocol import ForwardedFeedback, ForwardedTelemetry, InvalidEvent, parse_event

Forwarded = ForwardedFeedback | ForwardedTelemetry

# Unix seconds accepted for `ts` and `rx_ts`: 1970 up to 2100.
TIME_MAX = 4102444800.0
KNOWN_FIELDS = {
    "v", "id", "device", "site", "seq", "boot", "up_ms", "ts", "fw", "type", "rx_ts",
    "outcome", "score", "prompt", "trigger", "reason", "answer_ms", "ctx",
    "battery_mv", "rssi", "heap_free", "heap_min", "uptime_s", "temp_c",
    "outbox_depth", "reset_cause", "errors",
}  # fmt: skip
_WORD = re.compile(r"[a-z_]+")


def reason_class(error: str) -> str:
    """A bounded label for the rejection counter: the field at fault, else 'shape'."""
    head = error.split(":", 1)[0].split(".", 1)[0].strip()
    if head in KNOWN_FIELDS:
        return head
    for word in _WORD.findall(error[:40]):
        if word in KNOWN_FIELDS:
            return word
    return "shape"


INT_MAX = 2**53  # integers beyond this cannot be stored or compared exactly


def check_ranges(ev: Forwarded) -> None:
    """What the contract leaves open but storage needs: plausible times, bounded integers."""
    for name in ("ts", "rx_ts"):
        value = getattr(ev, name)
        if value is not None and not 0 <= value < TIME_MAX:
            raise InvalidEvent(f"{name}: must be unix seconds between 0 and {TIME_MAX:.0f}")
    ints: dict[str, int | None] = {"seq": ev.seq, "boot": ev.boot, "up_ms": ev.up_ms}
    if isinstance(ev, ForwardedFeedback):
        ints |= {
            "answer_ms": ev.answer_ms,
            "ctx.rssi": ev.ctx.rssi,
            "ctx.battery_mv": ev.ctx.battery_mv,
        }
    else:
        ints |= {f"errors.{k}": v for k, v in ev.errors.items()}
        ints["errors (sum)"] = sum(ev.errors.values())
    for name, value in ints.items():
        if value is not None and abs(value) > INT_MAX:
            raise InvalidEvent(f"{name}: must be at most 2^53 in magnitude")


@dataclass
class Rejected:
    index: int
    id: str | None
    error: str
    payload: Any


def validate(events: Sequence[Any]) -> tuple[list[Forwarded], list[Rejected], int]:
    """Good events (first of each id), rejections, and in-batch repeats."""
    good: list[Forwarded] = []
    bad: list[Rejected] = []
    seen: set[str] = set()
    repeats = 0
    for i, obj in enumerate(events):
        try:
            ev = parse_event(obj, forwarded=True)
            assert isinstance(ev, ForwardedFeedback | ForwardedTelemetry)
            check_ranges(ev)
        except InvalidEvent as err:
            raw_id = obj.get("id") if isinstance(obj, dict) else None
            bad.append(Rejected(i, raw_id if isinstance(raw_id, str) else None, str(err), obj))
            continue
        if ev.id in seen:
            repeats += 1
            continue
        seen.add(ev.id)
        good.append(ev)
    return good, bad, repeats
