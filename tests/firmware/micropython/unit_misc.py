# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Events, input decoding, text wrapping and the config checker."""

import json

import config
import events
from inputs import Button, Quadrature
from screens import wrap
from trigger import trigger_line

IDENT = {"device": "nps-a1b2c3", "site": "s1", "boot": 7, "fw": "1.0.0"}


def test_event_ts_from_integer_ms_and_id():
    e = json.loads(events.event(IDENT, 42, 5, 1793000102300, "telemetry", {}))
    assert e["ts"] == 1793000102.3 and e["id"] == "nps-a1b2c3:42" and e["seq"] == 42
    assert e["boot"] == 7 and e["up_ms"] == 5 and e["v"] == 1
    text = events.event(IDENT, 1, 0, 1793000000007, "telemetry", {})
    assert '"ts": 1793000000.007' in text
    assert json.loads(events.event(IDENT, 1, 0, None, "telemetry", {}))["ts"] is None


def test_feedback_body_has_score_only_when_answered():
    r = {"outcome": "timeout", "trigger": ("walkup", None), "reason": None, "answer_ms": None}
    body = events.feedback_body(r, "nps", -60, None)
    assert "score" not in body and body["ctx"] == {"rssi": -60, "battery_mv": None}


def test_quadrature_counts_detents_both_ways():
    q = Quadrature()
    for a, b in ((1, 0), (1, 1), (0, 1), (0, 0)) * 2:
        q.update(a, b)
    assert q.take() == -2 or q.take() == 0  # direction depends on wiring, magnitude does not
    q = Quadrature()
    for a, b in ((0, 1), (1, 1), (1, 0), (0, 0)):
        q.update(a, b)
    assert abs(q.take()) == 1
    q.update(1, 0)
    q.update(0, 0)  # a bounce cancels out
    assert q.take() == 0


def test_button_press_and_long_press():
    b = Button(long_ms=800, debounce_ms=30)
    assert b.update(True, 0) is None
    assert b.update(False, 10) is None  # bounce inside the debounce window
    assert b.update(False, 200) == ("press",)
    assert b.update(True, 1000) is None
    assert b.update(True, 1700) is None
    assert b.update(True, 1800) == ("long",)
    assert b.update(False, 2500) is None  # release after a long press adds nothing


def test_trigger_line():
    assert trigger_line("T cycle_complete tx-991") == ("trigger", "cycle_complete", "tx-991")
    assert trigger_line("T walkup") == ("trigger", "walkup", None)
    assert trigger_line("X cycle") is None and trigger_line("T") is None
    assert trigger_line("T a b c") is None


def test_wrap():
    assert wrap("How likely are you to recommend us?", 16) == [
        "How likely are",
        "you to recommend",
        "us?",
    ]
    assert wrap("abcdefghijklmnopqrstu", 16) == ["abcdefghijklmnop", "qrstu"]


def test_config_defaults_and_errors():
    cfg = config.parse('{"site": "s1", "broker": {"host": "10.0.0.2"}}', "nps-0a0b0c")
    assert cfg["device_id"] == "nps-0a0b0c" and cfg["broker"]["port"] == 1883
    assert cfg["outbox"]["max_kb"] == 1024 and cfg["topic_root"] == "nps/v1"
    for text, msg in (
        ('{"site": "s1", "broker": {"host": "h", "keepalive_s": true}}', "broker.keepalive_s"),
        (
            '{"site": "s1", "broker": {"host": "h"}, "outbox": {"max_kb": 8, "segment_kb": 4}}',
            "segment_kb",
        ),
        ("[]", "config.json must be an object"),
    ):
        try:
            config.parse(text, "nps-0a0b0c")
        except config.ConfigError as err:
            assert msg in str(err), str(err)
        else:
            raise AssertionError("accepted: " + text)
