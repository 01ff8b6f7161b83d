"""The gateway's queue policy, pure: what to admit, what to drop, how to batch, when to retry.

No I/O here: the MQTT adapter, the SQLite store and the HTTP forwarder call
these functions, and the tests exercise them directly.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from pydantic import TypeAdapter, ValidationError

from contract.protocol import (
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
    FeedbackEvent,
    IngestResult,
    InvalidEvent,
    StatusPayload,
    TelemetryEvent,
    check_size,
    decode_payload,
    describe,
    parse_event,
    parse_topic,
    plausible_ts,
)
from contract.protocol import Event as EventModel

# Dead-letter reasons the gateway itself gives (besides the contract's own).
THROTTLED = "throttled"
INTERNAL = "internal"
# What a dead letter keeps of a message, so that hostile sizes cannot fill the
# disk or the log: MQTT allows 65,535-byte topics (3.1.1 section 1.5.3) and
# 256 MB payloads; a contract topic is under 90 bytes, a payload at most 2,048.
MAX_TOPIC_KEPT = 256
MAX_PAYLOAD_KEPT = MAX_PAYLOAD_BYTES
MAX_REASON_KEPT = 512

# Drop reasons, as counted in the store and in /metrics.
EXPIRED = "expired"
FULL_TELEMETRY = "full_telemetry"
FULL_FEEDBACK = "full_feedback"
# When the store is full the oldest telemetry goes first, then the oldest feedback.
DROP_ORDER = (("telemetry", FULL_TELEMETRY), ("feedback", FULL_FEEDBACK))


@dataclass(frozen=True)
class Limits:
    """Bounds of the store on disk; whichever is reached first triggers the full policy."""

    max_events: int = 1_000_000
    max_bytes: int = 512 * 1024 * 1024
    ttl_s: float = 30 * 86400.0
    max_dead_letters: int = 100_000


@dataclass(frozen=True)
class Event:
    """An admitted event: `body` is the JSON the server receives (with `rx_ts`).

    `implausible_ts`: its `ts` lies outside the plausible window (protocol.plausible_ts);
    it is forwarded as sent and counted, because the contract allows a wrong clock."""

    id: str
    device: str
    kind: str
    rx_ts: float
    body: bytes
    implausible_ts: bool = False


@dataclass(frozen=True)
class Presence:
    device: str
    online: bool
    fw: str | None
    boot: int | None
    rx_ts: float
    # What the status says of the fleet (issue 14): config version, last accepted command.
    cfg: int | None = None
    cmd: int | None = None
    cmd_error: str | None = None
    update: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A message kept as a dead letter with its reason, cut to the kept sizes
    (`size` is the payload's length as received); build it with `reject`."""

    topic: str
    payload: bytes
    reason: str
    rx_ts: float
    size: int = 0
    device: str | None = None


def cut_topic(topic: str) -> str:
    """The topic cut to MAX_TOPIC_KEPT bytes of UTF-8 (on a character boundary)."""
    raw = topic.encode("utf-8", "replace")  # a lone surrogate becomes "?": storable text
    if len(raw) <= MAX_TOPIC_KEPT:
        return raw.decode("utf-8")
    return raw[:MAX_TOPIC_KEPT].decode("utf-8", "ignore") + f"...({len(raw)} bytes)"


def reject(
    topic: str, payload: bytes, reason: str, rx_ts: float, device: str | None = None
) -> Rejected:
    """A dead letter of what can be kept: topic, payload and reason cut to bounds."""
    if len(reason) > MAX_REASON_KEPT:
        reason = reason[:MAX_REASON_KEPT] + "..."
    return Rejected(
        cut_topic(topic), payload[:MAX_PAYLOAD_KEPT], reason, rx_ts, len(payload), device
    )


Admitted = Event | Presence | Rejected | None

# A site's topics repeat (three per device) and the intake asks twice per message (the
# throttle's key, then `admit`): each topic is parsed once. parse_topic is pure, so the
# cache answers exactly what it would; a topic that is not ours raises and is never kept,
# and the bound keeps a flood of invented device names from growing it.
_parse_topic = lru_cache(maxsize=4096)(parse_topic)


def admit(topic: str, payload: bytes, rx_ts: float, root: str) -> Admitted:
    """Judge one MQTT message at the edge.

    Events are validated against the contract models (cheap enough: see
    docs/gateway.md) so that a bad event is dead-lettered here, with its
    reason, instead of costing a round trip. None means "nothing to keep"
    (an empty retained status, i.e. a retained message being cleared).
    """
    try:
        device, kind = _parse_topic(topic, root)
        if kind == "status":
            return _presence(device, payload, rx_ts)
        if kind not in ("feedback", "telemetry"):
            raise InvalidEvent(f"topic kind {kind!r} does not carry events")
        event = _validate(payload)
        if event.device != device:
            raise InvalidEvent(f"device {event.device!r} does not match topic device {device!r}")
        if event.type != kind:
            raise InvalidEvent(f"type {event.type!r} sent on the {kind!r} topic")
    except InvalidEvent as err:
        return reject(topic, payload, str(err), rx_ts)
    implausible = not plausible_ts(event.ts, rx_ts)
    return Event(event.id, device, kind, rx_ts, with_rx_ts(payload, rx_ts), implausible)


_EVENT_FROM_JSON: TypeAdapter[FeedbackEvent | TelemetryEvent] = TypeAdapter(EventModel)


def _validate(payload: bytes) -> FeedbackEvent | TelemetryEvent:
    """Parse and validate in one pass (pydantic-core); on failure the two-step path
    (`decode_payload`, `parse_event`) finds the specific reason to report. Size and
    nesting are checked first, before either parser sees the bytes."""
    check_size(payload)
    # pydantic-core's parser takes NaN and Infinity (not JSON, RFC 8259 section 6) where
    # no field is checked, e.g. an unknown one: such payloads take the strict path.
    if b"NaN" not in payload and b"Infinity" not in payload:
        try:
            return _EVENT_FROM_JSON.validate_json(payload)
        except ValidationError:
            pass
    return parse_event(decode_payload(payload))


def _presence(device: str, payload: bytes, rx_ts: float) -> Presence | None:
    if not payload:
        return None
    try:
        status = StatusPayload.model_validate(decode_payload(payload), strict=True)
    except ValidationError as err:
        raise InvalidEvent(f"status: {describe(err)}") from None
    return Presence(
        device, status.online, status.fw, status.boot, rx_ts,
        status.cfg, status.cmd, status.cmd_error, status.update,
    )  # fmt: skip


def with_rx_ts(payload: bytes, rx_ts: float) -> bytes:
    """The event as forwarded: the device's own bytes plus `rx_ts`.

    The payload is a valid event, a JSON object, so it ends with `}` after JSON
    whitespace; splicing the field in saves re-encoding every event. A payload
    that mentions `rx_ts` (a device sending its own) is re-encoded with ours.
    """
    if b'"rx_ts"' in payload:
        obj = json.loads(payload) | {"rx_ts": rx_ts}
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return payload.rstrip(b" \t\r\n")[:-1] + b',"rx_ts":' + repr(rx_ts).encode() + b"}"


def topic_device(topic: str, root: str) -> str | None:
    """The device a topic names, or None when it is not one of ours (cheap: no JSON)."""
    try:
        return _parse_topic(topic, root)[0]
    except InvalidEvent:
        return None


class Throttle:
    """A token bucket per device: `rate` messages a second, up to `burst` at once.

    The defaults (docs/gateway.md, "Throttling") let a device send its whole
    offline outbox at once: `outbox.max_kb` 1024 KB holds about 2,700 events
    (docs/firmware.md), re-sent back to back with 4 in flight, plus up to one
    segment (about 45) re-sent after a power cut and a status per connect:
    under 3,000. A device asks about 290 prompts and 96 telemetry events a day
    (0.005 a second); 1 a second is 200 times that and refills the burst in
    50 minutes. Pure: time is passed in.
    """

    def __init__(self, rate: float = 1.0, burst: float = 3000.0, max_devices: int = 10_000):
        self.rate = rate
        self.burst = burst
        self.max_devices = max_devices
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)
        self.limited: set[str] = set()  # devices whose last message was throttled

    def take(self, device: str, now: float) -> bool:
        """Spend one token of `device`'s bucket; False when it has none (throttled)."""
        tokens, at = self._buckets.pop(device, (self.burst, now))
        # A clock stepped back (NTP) refills nothing but does not freeze the bucket.
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
            self.limited.discard(device)
        else:
            self.limited.add(device)
        self._buckets[device] = (tokens, now)  # re-inserted last: dict order is recency
        if len(self._buckets) > self.max_devices:
            self._forget(now)
        return allowed

    def _forget(self, now: float) -> None:
        """Drop buckets that have refilled (the same as no bucket), else the stalest."""
        full = [
            d for d, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for device in full:
            del self._buckets[device]
        while len(self._buckets) > self.max_devices:
            del self._buckets[next(iter(self._buckets))]
        self.limited &= self._buckets.keys()


def over_limit(depth: int, nbytes: int, limits: Limits) -> bool:
    return depth > limits.max_events or nbytes > limits.max_bytes


# A box without a real-time clock starts in 1970 until NTP answers: receipt
# times before this instant (2020-01-01) say "clock not set", not "old".
CLOCK_SET_AFTER = 1_577_836_800.0


def expiry_window(now: float, limits: Limits) -> tuple[float, float] | None:
    """Events with CLOCK_SET_AFTER <= rx_ts < cutoff are past the TTL; None while
    this clock itself is not set (nothing can be judged old then)."""
    if now < CLOCK_SET_AFTER:
        return None
    return CLOCK_SET_AFTER, now - limits.ttl_s


def lane_of(device: str, lanes: int) -> int:
    """The forwarding lane of a device: every event of a device goes through the same lane,
    so its events stay in order. CRC-32, not `hash()`, which Python salts per process."""
    return zlib.crc32(device.encode()) % lanes if lanes > 1 else 0


# The ingest body around the events: {"gateway":"...","events":[...]}
_ENVELOPE_BYTES = len('{"gateway":"","events":[]}')


def envelope(gateway: str, bodies: Sequence[bytes]) -> bytes:
    head = json.dumps({"gateway": gateway}, separators=(",", ":"))[:-1].encode()
    return head + b',"events":[' + b",".join(bodies) + b"]}"


def batch_size(
    sizes: Sequence[int],
    gateway: str,
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BODY_BYTES,
) -> int:
    """How many of these events (oldest first) fit one ingest body; at least one."""
    total = _ENVELOPE_BYTES + len(gateway.encode()) + 16
    n = 0
    for size in sizes[:max_events]:
        total += size + 1
        if total > max_bytes and n > 0:
            break
        n += 1
    return n


def outcome(n: int, result: IngestResult) -> dict[int, str]:
    """Index -> reason for the events of a batch of n the server rejected.

    Every other index was accepted or a duplicate: the server has it, so the
    store may delete it. An index out of range is a server bug; it raises.
    """
    rejected: dict[int, str] = {}
    for r in result.rejected:
        if not 0 <= r.index < n:
            raise ValueError(f"server rejected index {r.index} of a batch of {n}")
        rejected[r.index] = r.error
    if result.accepted + result.duplicates + len(rejected) != n:
        raise ValueError(
            f"server counted {result.accepted} accepted + {result.duplicates} duplicates"
            f" + {len(rejected)} rejected for a batch of {n}"
        )
    return rejected


@dataclass
class Backoff:
    """Exponential backoff with equal jitter: a delay in [ceiling/2, ceiling]."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random | None = None
    attempt: int = 0

    def next_delay(self) -> float:
        rng = self.rng or random
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
