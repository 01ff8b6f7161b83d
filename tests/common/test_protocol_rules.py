"""The contract's accept/reject decisions against the rules written out in plain Python.

Events are drawn valid, then one field (or a nested one) is replaced by a value of a
wrong type or range, or removed; the models must decide exactly as `contract_accepts`.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.protocol import ForwardedMixin, InvalidEvent, parse_event

DEVICE = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
SITE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
TELEMETRY_NUMBERS = (
    "battery_mv", "rssi", "heap_free", "heap_min", "uptime_s", "temp_c", "outbox_depth",
)  # fmt: skip
ABSENT = object()
MAX = 2**53 - 1  # every number of the contract is within +-MAX (docs/protocol.md, Bounds)


def is_int(x: Any) -> bool:
    return type(x) is int and -MAX <= x <= MAX


def is_number(x: Any) -> bool:
    if type(x) not in (int, float):
        return False
    try:
        return math.isfinite(float(x)) and -MAX <= x <= MAX
    except OverflowError:  # an int too large for a float
        return False


def is_text(x: Any, shortest: int, longest: int) -> bool:
    return type(x) is str and shortest <= len(x) <= longest


def optional(rule: Any) -> Any:
    return lambda x: x is None or rule(x)


COMMON = {
    # Today's `Literal[1]` is lax: it also takes true and 1.0.
    "v": lambda x: type(x) in (int, float, bool) and x == 1,
    "id": lambda x: is_text(x, 5, 96),
    "device": lambda x: type(x) is str and DEVICE.fullmatch(x) is not None,
    "site": lambda x: type(x) is str and SITE.fullmatch(x) is not None,
    "seq": lambda x: is_int(x) and x >= 1,
    "boot": lambda x: is_int(x) and x >= 0,
    "up_ms": lambda x: is_int(x) and x >= 0,
    "fw": lambda x: is_text(x, 1, 64),
}
COMMON_OPTIONAL = {"ts": optional(is_number)}
FEEDBACK = {"outcome": lambda x: x in ("answered", "timeout", "dismissed")}
FEEDBACK_OPTIONAL = {
    "score": optional(lambda x: is_int(x) and 0 <= x <= 10),
    "prompt": lambda x: is_text(x, 1, 32),
    "trigger": lambda x: (
        type(x) is dict
        and is_text(x.get("kind"), 1, 64)
        and optional(lambda r: is_text(r, 0, 128))(x.get("ref"))
    ),
    "reason": optional(lambda x: is_text(x, 0, 64)),
    "answer_ms": optional(lambda x: is_int(x) and x >= 0),
    "ctx": lambda x: (
        type(x) is dict and all(optional(is_int)(x.get(k)) for k in ("rssi", "battery_mv"))
    ),
}
TELEMETRY_OPTIONAL = {name: optional(is_number) for name in TELEMETRY_NUMBERS} | {
    "reset_cause": optional(lambda x: is_text(x, 0, 64)),
    "errors": lambda x: (
        type(x) is dict
        and len(x) <= 64
        and all(is_text(k, 0, 64) and is_int(n) for k, n in x.items())
    ),
}


def contract_accepts(event: Any, *, forwarded: bool) -> bool:
    """The contract (../shared/contract.md) as today's models apply it, one rule a line."""
    if type(event) is not dict or event.get("type") not in ("feedback", "telemetry"):
        return False
    required, optional_ = dict(COMMON), dict(COMMON_OPTIONAL)
    if forwarded:
        required["rx_ts"] = is_number
    if event["type"] == "feedback":
        required |= FEEDBACK
        optional_ |= FEEDBACK_OPTIONAL
    else:
        optional_ |= TELEMETRY_OPTIONAL
    if any(k not in event or not rule(event[k]) for k, rule in required.items()):
        return False
    if any(k in event and not rule(event[k]) for k, rule in optional_.items()):
        return False
    if event["id"] != f"{event['device']}:{event['seq']}":
        return False
    if event["type"] == "feedback":
        return (event["outcome"] == "answered") == (event.get("score") is not None)
    return True


def texts(shortest: int, longest: int) -> st.SearchStrategy[str]:
    """Short text, or text of exactly the shortest or longest length allowed."""
    return st.one_of(
        st.text(min_size=shortest, max_size=8), st.just("é" * shortest), st.just("x" * longest)
    )


times = st.one_of(st.floats(0, 4.1e9), st.integers(0, 4_100_000_000))
small_text = st.text(max_size=12)
ints = st.integers(-MAX, MAX)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events the contract accepts, within the server's storage bounds too."""
    device = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,12}", fullmatch=True))
    seq = draw(st.integers(1, MAX))
    event: dict[str, Any] = {
        "v": 1,
        "id": f"{device}:{seq}",
        "device": device,
        "site": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True)),
        "seq": seq,
        "boot": draw(st.integers(0, 10**6)),
        "up_ms": draw(st.integers(0, 10**12)),
        "ts": draw(st.none() | times),
        "fw": draw(texts(1, 64)),
        "rx_ts": draw(times),
    }
    if draw(st.booleans()):
        outcome = draw(st.sampled_from(["answered", "timeout", "dismissed"]))
        event |= {
            "type": "feedback",
            "outcome": outcome,
            "score": draw(st.integers(0, 10)) if outcome == "answered" else None,
            "prompt": draw(texts(1, 32)),
            "trigger": {"kind": draw(texts(1, 64)), "ref": draw(st.none() | texts(0, 128))},
            "reason": draw(st.none() | texts(0, 64)),
            "answer_ms": draw(st.none() | st.integers(0, 10**6)),
            "ctx": {"rssi": draw(st.none() | ints), "battery_mv": draw(st.none() | ints)},
        }
    else:
        numbers = st.none() | st.floats(-MAX, MAX) | ints
        event |= {name: draw(numbers) for name in TELEMETRY_NUMBERS}
        event |= {
            "type": "telemetry",
            "reset_cause": draw(st.none() | texts(0, 64)),
            "errors": draw(st.dictionaries(small_text, st.integers(0, 2**50), max_size=3)),
        }
    return event


WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(
        [0, -1, 11, MAX, -MAX, 2**53, 2**53 + 1, -(2**53) - 1, 2**63, 2**64, 10**400, -(10**400)]
    ),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 7.0, -0.0, 1e300, 4102444800.0]),
    small_text,
    st.sampled_from([4, 5, 32, 33, 64, 65, 96, 97, 128, 129]).map(lambda n: "x" * n),
    st.sampled_from(["", "7", "answered", "timeout", "feedback", "telemetry", "nps-abc"]),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(
        [{}, {"kind": "walkup"}, {"kind": 5}, {"wifi": 1.5}, {"a": 2**53}, {"x" * 65: 1}]
    ),
    st.sampled_from([float(MAX), float(2**53), -float(2**53), 1e16]),
)
FIELDS = [
    *COMMON, *COMMON_OPTIONAL, "type", "rx_ts", *FEEDBACK, *FEEDBACK_OPTIONAL,
    *TELEMETRY_OPTIONAL, "trigger.kind", "trigger.ref", "ctx.rssi", "ctx.battery_mv",
    "errors.wifi", "extra",
]  # fmt: skip


def mutated(event: dict[str, Any], field: str, value: Any, *, id_follows: bool) -> dict[str, Any]:
    """A copy of `event` with `field` (`parent.child` for a nested one) set to `value` or
    removed; when the field is `device` or `seq`, the id may follow it so that the field's
    own rule is the one tested."""
    event = copy.deepcopy(event)
    parent, _, child = field.rpartition(".")
    target = event
    if parent:
        if type(event.get(parent)) is not dict:
            event[parent] = {}
        target = event[parent]
    if value is ABSENT:
        target.pop(child, None)
    else:
        target[child] = value
    if field in ("device", "seq") and id_follows:
        event["id"] = f"{event.get('device')}:{event.get('seq')}"
    return event


mutations = st.tuples(valid_events(), st.just(ABSENT) | WRONG_VALUES, st.booleans())


PAIRED = {"device": "id", "seq": "id", "outcome": "score"}  # id = device:seq, score iff answered


def names_the_fault(error: str, field: str) -> bool:
    """One of the reasons starts with the field, its parent, or the field it must agree with;
    a changed `type` makes it the other kind of event, whose own fields may then be at fault."""
    if field == "type":
        return bool(error)
    parent = field.partition(".")[0]
    culprits = tuple(
        f"{name}{end}" for name in (field, parent, PAIRED.get(field, field)) for end in ":. "
    )
    return any(reason.startswith(culprits) for reason in error.split("; "))


@settings(max_examples=500, derandomize=True, deadline=None)
@given(mutation=mutations)
def test_contract_decides_as_the_rules(mutation: tuple[dict[str, Any], Any, bool]) -> None:
    valid, value, id_follows = mutation
    for field in FIELDS:
        event = mutated(valid, field, value, id_follows=id_follows)
        for forwarded in (False, True):
            expected = contract_accepts(event, forwarded=forwarded)
            try:
                parse_event(event, forwarded=forwarded)
                accepted = True
            except InvalidEvent as err:
                accepted = False
                assert names_the_fault(str(err), field), (field, str(err))
            assert accepted == expected, (field, value, forwarded)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(event=valid_events())
def test_valid_events_pass_with_their_values(event: dict[str, Any]) -> None:
    parsed = parse_event(event, forwarded=True)
    assert isinstance(parsed, ForwardedMixin)  # narrows the type: forwarded events carry rx_ts
    assert parsed.id == event["id"] and parsed.rx_ts == float(event["rx_ts"])
    assert type(parsed.rx_ts) is float and (parsed.ts is None or type(parsed.ts) is float)
