"""The nps-edge wire contract v1 (../shared/contract.md, docs/protocol.md) in one place.

The gateway and the server both import these models; the firmware cannot, so
the firmware tests validate every event the real firmware emits against them.
Validation is per event: one bad event yields one error string, never an
exception that takes its neighbours down.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

VERSION = 1
TOPIC_ROOT = "nps/v1"
MAX_PAYLOAD_BYTES = 2048
MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024

# Bounds on every value of the contract (docs/protocol.md, "Bounds"): an integer
# beyond 2^53 - 1 is not held exactly by a JSON number (RFC 8259 section 6) and
# overflows SQLite's INTEGER at 2^63; nesting beyond MAX_DEPTH costs a recursive
# parser its stack (a contract event nests 2 deep: event -> trigger/ctx/errors).
MAX_INT = 2**53 - 1
MAX_DEPTH = 8
MAX_STR = 64  # names and codes: fw, reason, reset_cause, trigger kind, error names
MAX_REF = 128  # trigger ref (a transaction id from the host machine)
MAX_ERROR_NAMES = 64  # keys of telemetry `errors`
# `ts` outside [TS_MIN, receipt + TS_AHEAD_S] is implausible: flagged and counted, not
# rejected (the contract lets a device without a clock send a wrong ts).
TS_MIN = 1_577_836_800.0  # 2020-01-01T00:00:00Z, before the first nps-edge device
TS_AHEAD_S = 86_400.0

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"
SITE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)

TOPIC_KINDS = ("feedback", "telemetry", "status", "cmd")
OUTCOMES = ("answered", "timeout", "dismissed")
# Additions of December 2026 (contract.md): which survey asked, and who answered.
SURVEYS = ("transactional", "relationship")
ROLES = ("end_user", "operator", "technician", "buyer", "sponsor")
Survey = Literal["transactional", "relationship"]
Role = Literal["end_user", "operator", "technician", "buyer", "sponsor"]

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
SiteId = Annotated[str, Field(pattern=SITE_PATTERN)]
Int = Annotated[StrictInt, Field(ge=-MAX_INT, le=MAX_INT)]
NonNegInt = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
Seq = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
Number = Annotated[StrictFloat, AllowInfNan(False), Field(ge=-MAX_INT, le=MAX_INT)]
"""An int or a finite float within +-(2^53 - 1), read as float; never a bool, a string,
NaN or infinity."""
Name = Annotated[StrictStr, Field(max_length=MAX_STR)]


class _Model(BaseModel):
    # Unknown fields are accepted and ignored (contract).
    model_config = ConfigDict(extra="ignore", strict=False)


class Trigger(_Model):
    kind: Annotated[StrictStr, Field(min_length=1, max_length=MAX_STR)]
    ref: Annotated[StrictStr, Field(max_length=MAX_REF)] | None = None


class Ctx(_Model):
    rssi: Int | None = None
    battery_mv: Int | None = None


class EventBase(_Model):
    v: Literal[1]
    id: Annotated[StrictStr, Field(min_length=5, max_length=96)]
    device: Annotated[DeviceId, Strict()]
    site: Annotated[SiteId, Strict()]
    seq: Seq
    boot: NonNegInt
    up_ms: NonNegInt
    ts: Number | None = None
    fw: Annotated[StrictStr, Field(min_length=1, max_length=MAX_STR)]

    @model_validator(mode="after")
    def _id_matches(self) -> EventBase:
        if self.id != f"{self.device}:{self.seq}":
            raise ValueError(f"id must be '{self.device}:{self.seq}' (device:seq), got {self.id!r}")
        return self


class FeedbackEvent(EventBase):
    type: Literal["feedback"]
    outcome: Literal["answered", "timeout", "dismissed"]
    score: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    prompt: Annotated[str, Field(min_length=1, max_length=32)] = "nps"
    trigger: Trigger = Field(default_factory=lambda: Trigger(kind="walkup"))
    reason: Annotated[str, Field(max_length=MAX_STR)] | None = None
    answer_ms: NonNegInt | None = None
    ctx: Ctx = Field(default_factory=Ctx)
    # Absent `survey` is transactional; absent or null `role` is unknown. Strict: a value
    # outside the lists (a literal matches only itself) rejects this one event with its reason.
    survey: Survey = "transactional"
    role: Role | None = None

    @model_validator(mode="after")
    def _score_iff_answered(self) -> FeedbackEvent:
        if self.outcome == "answered" and self.score is None:
            raise ValueError("score is required when outcome is 'answered'")
        if self.outcome != "answered" and self.score is not None:
            raise ValueError(f"score must be absent when outcome is {self.outcome!r}")
        return self


class TelemetryEvent(EventBase):
    type: Literal["telemetry"]
    battery_mv: Number | None = None
    rssi: Number | None = None
    heap_free: Number | None = None
    heap_min: Number | None = None
    uptime_s: Number | None = None
    temp_c: Number | None = None
    outbox_depth: Number | None = None
    reset_cause: Annotated[str, Field(max_length=MAX_STR)] | None = None
    errors: Annotated[dict[Name, Int], Field(max_length=MAX_ERROR_NAMES)] = Field(
        default_factory=dict
    )


Event = Annotated[FeedbackEvent | TelemetryEvent, Field(discriminator="type")]
_EVENT = TypeAdapter(Event)


class ForwardedMixin(_Model):
    rx_ts: Number


class ForwardedFeedback(FeedbackEvent, ForwardedMixin):
    """A feedback event as the gateway forwards it: with `rx_ts`."""


class ForwardedTelemetry(TelemetryEvent, ForwardedMixin):
    """A telemetry event as the gateway forwards it: with `rx_ts`."""


ForwardedEvent = Annotated[ForwardedFeedback | ForwardedTelemetry, Field(discriminator="type")]
_FORWARDED = TypeAdapter(ForwardedEvent)


class StatusPayload(_Model):
    """Retained `nps/v1/{device}/status`; the last will is `{"online": false}`."""

    online: bool
    fw: Name | None = None
    boot: NonNegInt | None = None
    # The fleet's report (issue 14, docs/protocol.md "cmd"): config version, last accepted n.
    cfg: NonNegInt | None = None
    cmd: NonNegInt | None = None
    cmd_error: Name | None = None
    update: Name | None = None


class IngestRequest(BaseModel):
    """`POST /api/v1/ingest` body. Events stay raw so each is judged alone."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "gateway": "gw-site-1",
                    "events": [
                        {
                            "v": 1,
                            "id": "nps-a1b2c3:42",
                            "device": "nps-a1b2c3",
                            "site": "store-12",
                            "seq": 42,
                            "boot": 7,
                            "up_ms": 360512,
                            "ts": 1795000000.5,
                            "fw": "1.0.0",
                            "type": "feedback",
                            "outcome": "answered",
                            "score": 9,
                            "prompt": "nps",
                            "trigger": {"kind": "cycle_complete", "ref": "tx-991"},
                            "reason": None,
                            "answer_ms": 2300,
                            "ctx": {"rssi": -61, "battery_mv": 3910},
                            "rx_ts": 1795000000.9,
                        }
                    ],
                }
            ]
        },
    )

    gateway: Annotated[str, Field(min_length=1, max_length=64)]
    events: Annotated[list[Any], Field(max_length=MAX_BATCH_EVENTS)]


class Rejection(BaseModel):
    index: int
    id: str | None
    error: str


class IngestResult(BaseModel):
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = Field(default_factory=list)


class PresenceUpdate(BaseModel):
    """One device's presence as the gateway saw it on the retained status topic."""

    device: DeviceId
    online: bool
    fw: Name | None = None
    boot: NonNegInt | None = None
    rx_ts: Number
    cfg: NonNegInt | None = None
    cmd: NonNegInt | None = None
    cmd_error: Name | None = None
    update: Name | None = None


class PresenceRequest(BaseModel):
    """`POST /api/v1/presence` (nps-edge extension, gateway token)."""

    gateway: Annotated[str, Field(min_length=1, max_length=64)]
    updates: Annotated[list[PresenceUpdate], Field(max_length=MAX_BATCH_EVENTS)]


class InvalidEvent(ValueError):
    """An event that breaks the contract; `str()` is the reason to report and count."""


def describe(err: ValidationError) -> str:
    """One line per problem: `field.path: message`, the reason stored and returned."""
    parts = []
    for e in err.errors(include_url=False):
        path = list(e["loc"])
        # Drop the discriminator tag pydantic puts first ("feedback.score" -> "score").
        if path and path[0] in ("feedback", "telemetry"):
            path = path[1:]
        loc = ".".join(str(p) for p in path)
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_event(obj: Any, *, forwarded: bool = False) -> FeedbackEvent | TelemetryEvent:
    """Validate one decoded event; raise InvalidEvent with a specific reason."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(obj).__name__}")
    if "type" not in obj:
        raise InvalidEvent("type: field required ('feedback' or 'telemetry')")
    if obj.get("type") not in ("feedback", "telemetry"):
        raise InvalidEvent(f"type: must be 'feedback' or 'telemetry', got {obj.get('type')!r}")
    try:
        return (_FORWARDED if forwarded else _EVENT).validate_python(obj)
    except ValidationError as err:
        raise InvalidEvent(describe(err)) from None


def nesting_depth(data: bytes) -> int:
    """The deepest `[`/`{` nesting of JSON text, brackets inside strings not counted.

    A byte scan, run before any parser sees the text: Python's json module recurses
    per level and raises RecursionError near 1,000 (`[` x 1000 is 1 KB).
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def check_size(payload: bytes) -> None:
    """Raise InvalidEvent when the payload is over the contract's size or nesting bound."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(f"payload too large: {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    # Fast path: fewer openers than the limit cannot nest past it (an event has 2-3);
    # bytes.count runs in C; the scan in Python took 14 us for a 348-byte event, more
    # than the gateway's whole `admit` of it (11.5 us), measured December 2026.
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return
    if (depth := nesting_depth(payload)) > MAX_DEPTH:
        raise InvalidEvent(f"payload nested too deep: depth {depth} > {MAX_DEPTH}")


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259 section 6), though Python's parser takes
    them; an unknown field holding one would make the forwarded body unparseable."""
    raise InvalidEvent(f"payload is not JSON: {name} is not a JSON number")


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode an MQTT payload into a JSON object, or raise InvalidEvent saying why."""
    check_size(payload)
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidEvent("payload is not UTF-8") from None
    except json.JSONDecodeError as err:
        raise InvalidEvent(f"payload is not JSON: {err.msg} at char {err.pos}") from None
    except InvalidEvent:
        raise
    except ValueError as err:  # an integer literal past sys.get_int_max_str_digits()
        raise InvalidEvent(f"payload is not usable JSON: {str(err)[:80]}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def clip(text: str, limit: int = 80) -> str:
    """`text` as a reason quotes it: repr, cut to `limit` characters with the length said."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """`nps/v1/{device}/{kind}` -> (device, kind); InvalidEvent when it is not one of ours."""
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        raise InvalidEvent(f"topic {clip(topic)} is not under {root!r}")
    rest = topic[len(prefix) :].split("/")
    if len(rest) != 2 or rest[1] not in TOPIC_KINDS:
        raise InvalidEvent(f"topic {clip(topic)} is not {root}/<device>/<{'|'.join(TOPIC_KINDS)}>")
    device, kind = rest
    if not _DEVICE_RE.match(device):
        raise InvalidEvent(f"topic device {clip(device)} is not a valid device_id")
    return device, kind


def plausible_ts(ts: float | None, received: float) -> bool:
    """Whether a device's `ts` lies in [TS_MIN, received + TS_AHEAD_S]; None (no clock)
    is plausible. While the receiver's own clock is unset only the lower bound is judged."""
    if ts is None:
        return True
    if ts < TS_MIN:
        return False
    return received < TS_MIN or ts <= received + TS_AHEAD_S


def topic(device: str, kind: str, root: str = TOPIC_ROOT) -> str:
    return f"{root.rstrip('/')}/{device}/{kind}"
