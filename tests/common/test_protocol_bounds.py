"""The contract's bounds (docs/protocol.md, "Bounds"): the attacks of issue 12 on the models.

Each input here once passed the models or crashed a parser: `boot` 2^63 overflowed
SQLite's INTEGER in the gateway's store, `[` x 1000 raised RecursionError in `json.loads`.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.protocol import (
    MAX_DEPTH,
    MAX_INT,
    TS_MIN,
    InvalidEvent,
    PresenceUpdate,
    StatusPayload,
    decode_payload,
    nesting_depth,
    parse_event,
    parse_topic,
    plausible_ts,
)


def feedback(**over: object) -> dict:
    event = {
        "v": 1, "id": "nps-a1b2c3:7", "device": "nps-a1b2c3", "site": "s", "seq": 7,
        "boot": 1, "up_ms": 10, "ts": 1795000000.0, "fw": "1.0.0", "type": "feedback",
        "outcome": "answered", "score": 9, "ctx": {"rssi": -61, "battery_mv": 3910},
    }  # fmt: skip
    return event | over


def telemetry(**over: object) -> dict:
    base = feedback(type="telemetry")
    for key in ("outcome", "score", "ctx"):
        del base[key]
    return base | over


@pytest.mark.parametrize("value", [2**53, 2**63, 2**64, 10**30, -(2**53)])
@pytest.mark.parametrize(
    "field",
    ["seq", "boot", "up_ms", "answer_ms", "ctx.rssi", "ctx.battery_mv"],
)
def test_integers_beyond_2_53_are_rejected_with_the_field(field, value):
    parent, _, child = field.rpartition(".")
    event = feedback()
    if parent:
        event[parent] = dict(event[parent]) | {child: value}
    else:
        event[field] = value
    if field == "seq":
        event["id"] = f"nps-a1b2c3:{value}"
    with pytest.raises(InvalidEvent) as err:
        parse_event(event)
    assert str(err.value).startswith(field.split(".")[0])


def test_the_largest_exact_integer_is_accepted():
    event = feedback(seq=MAX_INT, id=f"nps-a1b2c3:{MAX_INT}", boot=MAX_INT, up_ms=MAX_INT)
    assert parse_event(event).seq == MAX_INT


@pytest.mark.parametrize(
    "over, field",
    [
        ({"errors": {"wifi": 2**63}}, "errors"),
        ({"errors": {"x" * 65: 1}}, "errors"),
        ({"errors": {f"e{i}": 1 for i in range(65)}}, "errors"),
        ({"battery_mv": 1e300}, "battery_mv"),
        ({"temp_c": -(2**60)}, "temp_c"),
        ({"ts": 1e300}, "ts"),
    ],
)
def test_telemetry_numbers_and_error_counters_are_bounded(over, field):
    with pytest.raises(InvalidEvent) as err:
        parse_event(telemetry(**over))
    assert field in str(err.value)


@pytest.mark.parametrize("boot", [2**63, 2**64, 2**53, -1])
def test_status_boot_beyond_2_53_is_rejected(boot):
    with pytest.raises(ValidationError):
        StatusPayload.model_validate({"online": True, "boot": boot}, strict=True)
    with pytest.raises(ValidationError):
        PresenceUpdate(device="nps-a1b2c3", online=True, boot=boot, rx_ts=1.0)


def test_status_and_presence_strings_are_bounded():
    with pytest.raises(ValidationError):
        StatusPayload.model_validate({"online": True, "fw": "x" * 65}, strict=True)
    with pytest.raises(ValidationError):
        PresenceUpdate(device="nps-a1b2c3", online=True, fw="x" * 65, rx_ts=1.0)
    with pytest.raises(ValidationError):
        PresenceUpdate(device="nps-a1b2c3", online=True, rx_ts=float("nan"))


@pytest.mark.parametrize("opener", [b"[", b"{", b'{"a":'])
def test_deep_nesting_is_refused_before_any_parser_runs(opener):
    payload = opener * 1000  # 1-5 KB: RecursionError in json.loads on the old code
    with pytest.raises(InvalidEvent, match="nested too deep"):
        decode_payload(payload[:2000])


def test_a_contract_event_is_well_within_the_depth_limit():
    assert nesting_depth(json.dumps(feedback(trigger={"kind": "w"})).encode()) == 2 < MAX_DEPTH
    with pytest.raises(InvalidEvent, match="JSON object"):
        decode_payload(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)  # at the limit: parsed, then judged


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"reason": '[[[[[[[[[[{{{{{{{{{{\\"[[[[[[', "ref": "]]]]"}).encode()
    assert nesting_depth(text) == 1
    assert decode_payload(text)["ref"] == "]]]]"


@settings(max_examples=300, derandomize=True, deadline=None)
@given(value=st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3)))
def test_nesting_depth_agrees_with_the_parsed_structure(value):
    def depth(v: object) -> int:
        return 1 + max((depth(x) for x in v), default=0) if isinstance(v, list) else 0

    assert nesting_depth(json.dumps(value).encode()) == depth(value)


def test_nan_and_infinity_are_rejected():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidEvent, match="ts"):
            parse_event(feedback(ts=bad))


def test_a_60_kb_topic_is_quoted_short_in_the_reason():
    topic = "nps/v1/" + "x" * 60_000 + "/feedback"
    with pytest.raises(InvalidEvent) as err:
        parse_topic(topic)
    assert len(str(err.value)) < 300 and "60000 chars" in str(err.value)


def test_plausible_timestamp_window():
    now = 1795000000.0
    assert plausible_ts(None, now) and plausible_ts(now, now) and plausible_ts(TS_MIN, now)
    assert plausible_ts(now + 86_000, now)
    assert not plausible_ts(0.0, now)  # 1970: a clock never set
    assert not plausible_ts(TS_MIN - 1, now)
    assert not plausible_ts(4102444800.0, now)  # 2100
    assert plausible_ts(4102444800.0, 5.0)  # the receiver's clock unset: no upper bound
    assert not plausible_ts(5.0, 5.0)


def test_nan_in_an_unknown_field_is_refused_so_the_forwarded_body_stays_json():
    from gateway.policy import Rejected, admit

    payload = json.dumps(feedback(extra=1.5)).replace("1.5", "NaN").encode()
    judged = admit("nps/v1/nps-a1b2c3/feedback", payload, 1795000000.0, "nps/v1")
    assert isinstance(judged, Rejected) and "NaN is not a JSON number" in judged.reason
