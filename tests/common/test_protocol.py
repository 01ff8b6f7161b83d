"""The wire contract's validation: each rule rejects one event with a specific reason."""

from __future__ import annotations

import json

import pytest

from contract.protocol import (
    FeedbackEvent,
    ForwardedMixin,
    InvalidEvent,
    TelemetryEvent,
    decode_payload,
    parse_event,
    parse_topic,
)


def feedback(**over: object) -> dict:
    event = {
        "v": 1,
        "id": "nps-a1b2c3:5",
        "device": "nps-a1b2c3",
        "site": "store-1",
        "seq": 5,
        "boot": 2,
        "up_ms": 1000,
        "ts": None,
        "fw": "1.0.0",
        "type": "feedback",
        "outcome": "answered",
        "score": 7,
        "prompt": "nps",
        "trigger": {"kind": "cycle_complete", "ref": "tx-1"},
        "reason": None,
        "answer_ms": 1200,
        "ctx": {"rssi": -60, "battery_mv": 3900},
    }
    event.update(over)
    return event


def test_valid_feedback_parses_and_ignores_unknown_fields() -> None:
    event = parse_event(feedback(extra_field="ok"))
    assert isinstance(event, FeedbackEvent)  # narrows the type
    assert event.score == 7 and event.trigger.kind == "cycle_complete"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"score": 11}, "score"),
        ({"score": True}, "score"),
        ({"score": 7.0}, "score"),
        ({"score": "7"}, "score"),
        ({"score": -1}, "score"),
        ({"outcome": "timeout"}, "score must be absent"),
        ({"outcome": "answered", "score": None}, "score is required"),
        ({"id": "nps-a1b2c3:6"}, "id must be"),
        ({"device": "NPS!"}, "device"),
        ({"seq": 0}, "seq"),
        ({"v": 2}, "v"),
        ({"type": "alarm"}, "type"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": True}, "ts"),
        ({"trigger": {"kind": 5}}, "trigger.kind"),
        ({"ctx": {"rssi": "weak"}}, "ctx.rssi"),
    ],
)
def test_bad_field_rejects_with_specific_reason(override: dict, needle: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(feedback(**override))
    assert needle in str(err.value)


def test_forwarded_event_needs_rx_ts() -> None:
    with pytest.raises(InvalidEvent, match="rx_ts"):
        parse_event(feedback(), forwarded=True)
    forwarded = parse_event(feedback(rx_ts=1.5), forwarded=True)
    assert isinstance(forwarded, ForwardedMixin)  # narrows the type
    assert forwarded.rx_ts == 1.5


def test_telemetry_numbers_and_errors() -> None:
    tele = {k: v for k, v in feedback().items() if k not in ("outcome", "score", "trigger")}
    tele.update(type="telemetry", battery_mv=3800, rssi=-70, errors={"wifi": 2}, reset_cause="wdt")
    parsed = parse_event(tele)
    assert isinstance(parsed, TelemetryEvent)  # narrows the type
    assert parsed.errors == {"wifi": 2}
    tele["battery_mv"] = "low"
    with pytest.raises(InvalidEvent, match="battery_mv"):
        parse_event(tele)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "UTF-8"),
        (json.dumps({"pad": "x" * 3000}).encode(), "too large"),
    ],
)
def test_decode_payload_rejects(payload: bytes, needle: str) -> None:
    with pytest.raises(InvalidEvent, match=needle):
        decode_payload(payload)


def test_parse_topic() -> None:
    assert parse_topic("nps/v1/nps-a1b2c3/feedback") == ("nps-a1b2c3", "feedback")
    for bad in ("other/x/feedback", "nps/v1/nps-a1b2c3/other", "nps/v1/A/feedback"):
        with pytest.raises(InvalidEvent):
            parse_topic(bad)
