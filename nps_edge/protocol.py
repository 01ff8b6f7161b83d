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

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"
SITE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)

TOPIC_KINDS = ("feedback", "telemetry", "status", "cmd")
OUTCOMES = ("answered", "timeout", "dismissed")

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
SiteId = Annotated[str, Field(pattern=SITE_PATTERN)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Seq = Annotated[StrictInt, Field(ge=1)]
Number = Annotated[StrictFloat, AllowInfNan(False)]
"""An int or a finite float, read as float; never a bool, a string, NaN or infinity."""


class _Model(BaseModel):
    # Unknown fields are accepted and ignored (contract).
    model_config = ConfigDict(extra="ignore", strict=False)


class Trigger(_Model):
    kind: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    ref: Annotated[StrictStr, Field(max_length=128)] | None = None


class Ctx(_Model):
    rssi: StrictInt | None = None
    battery_mv: StrictInt | None = None


class EventBase(_Model):
    v: Literal[1]
    id: Annotated[StrictStr, Field(min_length=5, max_length=96)]
    device: Annotated[DeviceId, Strict()]
    site: Annotated[SiteId, Strict()]
    seq: Seq
    boot: NonNegInt
    up_ms: NonNegInt
    ts: Number | None = None
    fw: Annotated[StrictStr, Field(min_length=1, max_length=64)]

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
    reason: Annotated[str, Field(max_length=64)] | None = None
    answer_ms: NonNegInt | None = None
    ctx: Ctx = Field(default_factory=Ctx)

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
    reset_cause: Annotated[str, Field(max_length=64)] | None = None
    errors: dict[str, StrictInt] = Field(default_factory=dict)


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
    fw: str | None = None
    boot: NonNegInt | None = None


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
    fw: str | None = None
    boot: NonNegInt | None = None
    rx_ts: float


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


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode an MQTT payload into a JSON object, or raise InvalidEvent saying why."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(f"payload too large: {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidEvent("payload is not UTF-8") from None
    except json.JSONDecodeError as err:
        raise InvalidEvent(f"payload is not JSON: {err.msg} at char {err.pos}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """`nps/v1/{device}/{kind}` -> (device, kind); InvalidEvent when it is not one of ours."""
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        raise InvalidEvent(f"topic {topic!r} is not under {root!r}")
    rest = topic[len(prefix) :].split("/")
    if len(rest) != 2 or rest[1] not in TOPIC_KINDS:
        raise InvalidEvent(f"topic {topic!r} is not {root}/<device>/<{'|'.join(TOPIC_KINDS)}>")
    device, kind = rest
    if not _DEVICE_RE.match(device):
        raise InvalidEvent(f"topic device {device!r} is not a valid device_id")
    return device, kind


def topic(device: str, kind: str, root: str = TOPIC_ROOT) -> str:
    return f"{root.rstrip('/')}/{device}/{kind}"
