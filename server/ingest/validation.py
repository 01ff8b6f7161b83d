"""Judging one forwarded event: the contract (contract.protocol) plus what storage needs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contract.protocol import (
    MAX_BATCH_EVENTS,
    MAX_ERROR_NAMES,
    Ctx,
    ForwardedEvent,
    ForwardedFeedback,
    ForwardedTelemetry,
    IngestRequest,
    InvalidEvent,
    Name,
    NonNegInt,
    Number,
    PresenceRequest,
    PresenceUpdate,
    Seq,
    describe,
    parse_event,
)
from server.ingest.timebase import plausible_rx_ts, plausible_ts
from server.metrics import Metrics

Forwarded = ForwardedFeedback | ForwardedTelemetry

# Unix seconds accepted for `ts` and `rx_ts`: 1970 up to 2100.
TIME_MAX = 4102444800.0
KNOWN_FIELDS = {
    "v", "id", "device", "site", "seq", "boot", "up_ms", "ts", "fw", "type", "rx_ts",
    "outcome", "score", "prompt", "trigger", "reason", "answer_ms", "ctx",
    "battery_mv", "rssi", "heap_free", "heap_min", "uptime_s", "temp_c",
    "outbox_depth", "reset_cause", "errors", "survey", "role",
}  # fmt: skip


def field_label(loc: Sequence[int | str], msg: str = "") -> str:
    """A bounded label for the rejection counter, read from a pydantic error's `loc`:
    the top-level field at fault (the discriminator tag dropped), else 'shape'.

    A model-level rule (`loc` names no field) states its field first, by the
    convention of every model validator here and in the contract ("id must...",
    "fw: must not contain NUL"): that first word is taken when it is a field."""
    path = [p for p in loc if p not in ("feedback", "telemetry")]
    if path:
        head = str(path[0])
    else:
        words = msg.removeprefix("Value error, ").split(" ", 1)
        head = words[0].split(":", 1)[0].split(".", 1)[0]
    return head if head in KNOWN_FIELDS else "shape"


class EventRejected(InvalidEvent):
    """An event storage does not take; `str()` is the reason, `field` its counter label."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.field = field


INT_MAX = 2**53 - 1  # the largest integer a JSON number (a double) holds exactly
TIME_RULE = f"must be unix seconds between 0 and {TIME_MAX:.0f}"
INT_RULE = "must be at most 2^53 - 1 in magnitude"
TIME_FIELDS = ("ts", "rx_ts")

# PostgreSQL text cannot hold NUL (psycopg.DataError, a 500 before issue 12), so
# no text field may, on either database (one behaviour for both).
NUL_RULE = "must not contain NUL"

UnixTime = Annotated[Number, Field(ge=0, lt=TIME_MAX)]
BoundedInt = Annotated[StrictInt, Field(ge=-INT_MAX, le=INT_MAX)]
# A second `ge` would replace the contract's lower bound, so the contract's
# non-negative integers get only the upper one.
BoundedCount = Annotated[NonNegInt, Field(le=INT_MAX)]


class StoredCtx(Ctx):
    """Health at answer time, within what an integer column holds."""

    rssi: BoundedInt | None = None
    battery_mv: BoundedInt | None = None


class StorageBounds(BaseModel):
    """What the contract leaves open but storage needs: plausible times, bounded integers.

    Listed before a forwarded model in the bases, these fields replace the contract's
    with the same types narrowed, so the contract's rules still hold."""

    seq: Annotated[Seq, Field(le=INT_MAX)]
    boot: BoundedCount
    up_ms: BoundedCount
    ts: UnixTime | None = None
    rx_ts: UnixTime


def storable(text: str) -> str:
    """`text` with each NUL and lone surrogate (which JSON's `\\ud800` can send and
    UTF-8 cannot encode) replaced: a rejection's id and reason quote what was sent,
    and are stored (`dead_letter`) and answered as they are."""
    if text.isascii():
        return text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


class NulInText(ValueError):
    """Text holding NUL; a ValueError, so a model validator raising it is a validation
    error, and the app answers it 422 where a route meets it (server.app)."""


def no_nul(**texts: str | None) -> None:
    """Raise NulInText naming the first of `texts` (field name -> value) holding NUL."""
    for name, value in texts.items():
        if value is not None and "\x00" in value:
            raise NulInText(f"{name}: {NUL_RULE}")


class StoredFeedback(StorageBounds, ForwardedFeedback):
    answer_ms: BoundedCount | None = None
    ctx: StoredCtx = Field(default_factory=StoredCtx)

    @model_validator(mode="after")
    def _text_storable(self) -> StoredFeedback:
        no_nul(**{"fw": self.fw, "prompt": self.prompt, "reason": self.reason,
                  "trigger.kind": self.trigger.kind, "trigger.ref": self.trigger.ref})  # fmt: skip
        return self


# The device's sampling counters (docs/firmware.md): not in the contract, whose unknown
# fields are accepted and ignored, so a value the server cannot keep is dropped and
# counted, never a reason to refuse the event's health readings.
SAMPLING_NAMES = 8  # the firmware sends 3 (sampled_out, throttled, expired)
SamplingName = Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=r"^[^\x00]*$")]
# A name's length bound also refuses a lone surrogate (JSON's `\ud800`), which UTF-8
# cannot encode; strict: a count is an integer, not a bool, float or numeric string.
_SAMPLING = TypeAdapter(
    Annotated[dict[SamplingName, BoundedCount], Field(max_length=SAMPLING_NAMES)]
)


def sampling_counts(value: Any) -> dict[str, int] | None:
    """`value` as the sampling counters the server keeps: an object of at most
    SAMPLING_NAMES names (1-32 characters of text, no NUL) to counts (integers from 0 to
    2^53 - 1); else None."""
    try:
        counts: dict[str, int] = _SAMPLING.validate_python(value, strict=True)
    except ValidationError:
        return None
    return counts


class StoredTelemetry(StorageBounds, ForwardedTelemetry):
    # The contract's names and their number, each count within what a BIGINT holds.
    errors: Annotated[dict[Name, BoundedInt], Field(max_length=MAX_ERROR_NAMES)] = Field(
        default_factory=dict
    )
    sampling: dict[str, int] | None = None

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling_kept(cls, value: Any) -> dict[str, int] | None:
        return sampling_counts(value)  # `validate` counts what this drops

    @field_validator("errors")
    @classmethod
    def _sum_bounded(cls, errors: dict[str, int]) -> dict[str, int]:
        if errors and abs(sum(errors.values())) > INT_MAX:
            raise ValueError(f"sum {INT_RULE}")
        no_nul(**{"key": next((k for k in errors if "\x00" in k), None)})
        return errors

    @model_validator(mode="after")
    def _text_storable(self) -> StoredTelemetry:
        no_nul(fw=self.fw, reset_cause=self.reset_cause)
        return self


class StoredPresenceUpdate(PresenceUpdate):
    """A presence update as storage takes it: the contract leaves `boot` and `rx_ts` open."""

    fw: Annotated[str, Field(max_length=64)] | None = None
    boot: BoundedCount | None = None
    rx_ts: UnixTime

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> StoredPresenceUpdate:
        """NUL-free text, and a receipt time in the plausible window: a device's
        newest report is its state, so one from 2099 would freeze it for good.
        Counted in the validation context's `metrics`, when given (`server.api.ingest`)."""
        no_nul(fw=self.fw)
        now = time.time()
        if not plausible_rx_ts(self.rx_ts, now):
            metrics: Metrics | None = (info.context or {}).get("metrics")
            if metrics is not None:
                metrics.implausible_ts.labels(field="presence.rx_ts").inc()
            self.rx_ts = now
        return self


class StoredPresence(PresenceRequest):
    # Narrowed on purpose: the same field, each update held to storage's bounds.
    updates: Annotated[  # type: ignore[assignment]
        list[StoredPresenceUpdate], Field(max_length=MAX_BATCH_EVENTS)
    ]

    @model_validator(mode="after")
    def _text_storable(self) -> StoredPresence:
        no_nul(gateway=self.gateway)
        return self


class StoredIngest(IngestRequest):
    """The batch's envelope as storage takes it (each event is judged alone later)."""

    @model_validator(mode="after")
    def _text_storable(self) -> StoredIngest:
        no_nul(gateway=self.gateway)
        return self


# Request models the server narrows to what storage takes (server.api.ingest._shape).
NARROWED: dict[type[BaseModel], type[BaseModel]] = {
    PresenceRequest: StoredPresence,
    IngestRequest: StoredIngest,
}

_STORED = TypeAdapter(
    Annotated[StoredFeedback | StoredTelemetry, Field(discriminator="type")]
).validator
# The contract alone, to tell its reason (and field) from a storage bound's.
_CONTRACT = TypeAdapter(ForwardedEvent).validator


def _storage_reason(err: ValidationError) -> str:
    """Every error of an event the contract accepts is a storage bound; say which."""
    reasons = []
    for e in err.errors(include_url=False):
        field = ".".join(str(p) for p in e["loc"][1:])
        if e["type"] == "value_error":
            rule = e["msg"].removeprefix("Value error, ")
        else:
            rule = TIME_RULE if e["loc"][-1] in TIME_FIELDS else INT_RULE
        reasons.append(f"{field}: {rule}" if field else rule)  # a model's rule names its field
    return "; ".join(reasons)


def judge(obj: Any) -> Forwarded:
    """One forwarded event as storage takes it, or EventRejected naming the field at
    fault: the contract's reason when the contract rejects it, else the storage bound."""
    try:
        return _STORED.validate_python(obj)
    except ValidationError as err:
        stored = err
    if not isinstance(obj, dict):
        parse_event(obj, forwarded=True)  # raises the contract's reason
    if obj.get("type") not in ("feedback", "telemetry"):
        try:
            parse_event(obj, forwarded=True)
        except InvalidEvent as err:
            raise EventRejected(str(err), "type") from None
    try:
        _CONTRACT.validate_python(obj)
    except ValidationError as err:
        raise EventRejected(describe(err), _first_field(err)) from None
    raise EventRejected(_storage_reason(stored), _first_field(stored))


def _first_field(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    return field_label(first["loc"], first["msg"])


def _in_window(ev: Forwarded, now: float, metrics: Metrics | None) -> Forwarded:
    """`ev` with an implausible `rx_ts` replaced by `now`; counts what was implausible."""
    if not plausible_rx_ts(ev.rx_ts, now):
        if metrics is not None:
            metrics.implausible_ts.labels(field="rx_ts").inc()
        ev = ev.model_copy(update={"rx_ts": now})
    if ev.ts is not None and not plausible_ts(ev.ts, ev.rx_ts) and metrics is not None:
        metrics.implausible_ts.labels(field="ts").inc()
    return ev


@dataclass
class Rejected:
    index: int
    id: str | None
    error: str
    payload: Any
    field: str  # the counters' label: the field at fault, `shape`, `site` or `device`


def validate(
    events: Sequence[Any], *, now: float | None = None, metrics: Metrics | None = None
) -> tuple[list[Forwarded], list[Rejected], int]:
    """Good events (first of each id), rejections, and in-batch repeats.

    Times outside the plausible window are not refused (a device's or a gateway's
    clock may be wrong) but counted: an implausible `rx_ts` becomes the server's
    receipt time `now`; an implausible `ts` is kept as sent and ignored by the
    timebase, which rebuilds the event's time (`timebase.plausible_ts`). `metrics`: the
    app's counters; None for in-process callers that count nothing."""
    now = time.time() if now is None else now
    good: list[Forwarded] = []
    bad: list[Rejected] = []
    seen: set[str] = set()
    repeats = 0
    for i, obj in enumerate(events):
        try:
            ev = judge(obj)
        except InvalidEvent as err:
            raw_id = obj.get("id") if isinstance(obj, dict) else None
            raw_id = storable(raw_id) if isinstance(raw_id, str) else None
            field = err.field if isinstance(err, EventRejected) else "shape"
            bad.append(Rejected(i, raw_id, storable(str(err)), obj, field))
            continue
        if ev.id in seen:
            repeats += 1
            continue
        seen.add(ev.id)
        if isinstance(ev, StoredTelemetry) and ev.sampling is None and metrics is not None:
            if isinstance(obj, dict) and obj.get("sampling") is not None:
                metrics.fields_ignored.labels(field="sampling").inc()
        good.append(_in_window(ev, now, metrics))
    return good, bad, repeats
