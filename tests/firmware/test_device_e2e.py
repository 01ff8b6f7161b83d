"""The real firmware (.mpy) in the real micropython binary (-X heapsize=64k) against a real
Mosquitto: taps in, events out, every event checked against the contract models."""

from __future__ import annotations

import json
import time

import pytest

T0 = 1793000000000  # scripted wall clock, unix ms


def answers(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "feedback"]


@pytest.mark.slow
def test_taps_become_exact_feedback_events(
    devices, config, mqtt_broker, subscriber, make_subscriber
) -> None:
    cfg = config(
        mqtt_broker,
        reasons=[
            {"code": "wait", "label": "Waiting time"},
            {"code": "price", "label": "Price"},
        ],
        sim={"rssi": -61, "battery_mv": 3900, "start_ms": T0},
        fw="1.4.0",
    )
    dev = devices.start(devices.folder("d", cfg))
    dev.send(
        # A transaction prompts; the person turns to 7 and confirms after 2.3 s.
        f"at {T0 + 100000}",
        "trigger cycle_complete tx-1",
        f"at {T0 + 102300}",
        "turn 1",
        "turn 2",
        "press",
        # During the cool-down another transaction is ignored and counted.
        f"at {T0 + 108000}",
        "trigger cycle_complete tx-x",
        # A walk-up tap; 2, then a reason.
        f"at {T0 + 200000}",
        "press",
        f"at {T0 + 204000}",
        "turn 1",
        "turn -3",
        "press",
        "turn 1",
        "press",
        # Nobody answers.
        f"at {T0 + 300000}",
        "trigger service_visit sv-3",
        f"at {T0 + 331000}",
        # Backed out.
        f"at {T0 + 400000}",
        "trigger cycle_complete tx-2",
        "long",
        f"at {T0 + 500000}",
        "set rssi -70",
        "telemetry",
    )
    events = subscriber.wait_for(lambda evs: len(evs) >= 6)
    common = {
        "v": 1,
        "device": "nps-a1b2c3",
        "site": "store-1",
        "boot": 0,
        "fw": "1.4.0",
        "type": "feedback",
        "prompt": "nps",
        "ctx": {"rssi": -61, "battery_mv": 3900},
        "survey": "transactional",  # contract additions, Dec 2026
        "role": None,
    }
    assert answers(events) == [
        dict(
            common,
            id="nps-a1b2c3:2",
            seq=2,
            up_ms=102300,
            ts=1793000102.3,
            outcome="answered",
            score=7,
            reason=None,
            answer_ms=2300,
            trigger={"kind": "cycle_complete", "ref": "tx-1"},
        ),
        dict(
            common,
            id="nps-a1b2c3:3",
            seq=3,
            up_ms=204000,
            ts=1793000204.0,
            outcome="answered",
            score=2,
            reason="price",
            answer_ms=4000,
            trigger={"kind": "walkup", "ref": None},
        ),
        dict(
            common,
            id="nps-a1b2c3:4",
            seq=4,
            up_ms=330000,
            ts=1793000330.0,
            outcome="timeout",
            reason=None,
            answer_ms=None,
            trigger={"kind": "service_visit", "ref": "sv-3"},
        ),
        dict(
            common,
            id="nps-a1b2c3:5",
            seq=5,
            up_ms=400000,
            ts=1793000400.0,
            outcome="dismissed",
            reason=None,
            answer_ms=None,
            trigger={"kind": "cycle_complete", "ref": "tx-2"},
        ),
    ]
    boot_tm, last_tm = [e for e in events if e["type"] == "telemetry"]
    assert boot_tm["seq"] == 1 and boot_tm["ts"] == T0 / 1000 and boot_tm["up_ms"] == 0
    assert last_tm["seq"] == 6 and last_tm["rssi"] == -70 and last_tm["battery_mv"] == 3900
    assert last_tm["errors"] == {"trigger_cooldown": 1}
    assert last_tm["reset_cause"] == "power_on" and last_tm["outbox_depth"] >= 0
    assert 0 < last_tm["heap_min"] <= last_tm["heap_free"] < 64 * 1024
    late = make_subscriber(mqtt_broker, "nps/v1/+/status", client_id="late")
    topic, payload, retained = late.wait_messages(1)[0]
    assert topic == "nps/v1/nps-a1b2c3/status" and retained
    # The remote-control fields (docs/firmware.md, Signed commands): factory settings, none yet.
    assert json.loads(payload) == {
        "online": True,
        "fw": "1.4.0",
        "boot": 0,
        "cfg": 0,
        "cmd": 0,
        "cmd_error": None,
        "update": None,
    }
    dev.close_input()  # end of input: send what is left, say offline, exit
    assert dev.wait() == 0
    last = [p for t, p, _ in subscriber.messages if t.endswith("/status")][-1]
    assert json.loads(last) == {"online": False}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "config.json is not valid JSON"),
        (
            '{"site": "s1", "broker": {"host": "h", "port": 70000}}',
            "broker.port must be an integer",
        ),
        ('{"site": "Bad Site", "broker": {"host": "h"}}', "site 'Bad Site': use a-z, 0-9 and -"),
        (
            '{"site": "s1", "broker": {"host": "h"}, "device_id": "x"}',
            "device_id 'x': use a-z, 0-9 and -",
        ),
        ('{"site": "s1", "broker": {}}', "broker.host must be a non-empty string"),
        ('{"site": "s1", "broker": {"host": "h"}, "colour": 1}', "unknown setting colour"),
        ('{"site": "s1", "broker": {"host": "h"}, "reasons": [1]}', "reasons[0] must be"),
    ],
)
def test_bad_config_stops_the_boot_with_a_clear_message(devices, text, message) -> None:
    if '"device_id"' not in text and text.startswith('{"'):
        text = text[:-1] + ', "device_id": "nps-000001"}'
    dev = devices.start(devices.folder("bad", text))
    assert dev.wait() == 2
    fatal = dev.wait_for("fatal ")
    assert message in fatal[0]
    assert message in dev.log_tail()
    assert (dev.folder / "fatal.fb").stat().st_size == 128 * 64 // 8  # shown on screen


@pytest.mark.slow
def test_real_clock_prompt_times_out_on_its_own(devices, config, mqtt_broker, subscriber) -> None:
    """With the real clock nobody drives time: the loop wakes up for the deadline itself."""
    cfg = config(mqtt_broker, sim={"clock": "real"}, timeouts={"prompt_s": 1})
    dev = devices.start(devices.folder("d", cfg))
    dev.wait_for("screen idle")
    before = time.time()
    dev.send("trigger cycle_complete tx-real")
    saved = dev.wait_for("saved f ", timeout=10)
    assert saved[0].endswith("timeout -")
    events = subscriber.wait_for(lambda evs: any(e["type"] == "feedback" for e in evs))
    fb = [e for e in events if e["type"] == "feedback"][0]
    assert fb["outcome"] == "timeout" and fb["trigger"] == {
        "kind": "cycle_complete",
        "ref": "tx-real",
    }
    assert before + 0.9 <= fb["ts"] <= time.time() + 0.1  # shown, then one second without input


@pytest.mark.slow
def test_ts_is_null_until_the_clock_is_set(devices, config, mqtt_broker, subscriber) -> None:
    """No NTP yet: ts null, and boot/up_ms let the server rebuild the time."""
    dev = devices.start(devices.folder("d", config(mqtt_broker)))  # scripted clock, not set
    dev.send("press", "turn 1", "turn 5", "press")  # 10, before any time is known
    dev.send(f"at {T0}", "telemetry")  # now the clock is set
    events = subscriber.wait_for(lambda evs: len(evs) >= 3)
    by_seq = {e["seq"]: e for e in events}
    assert by_seq[1]["ts"] is None and by_seq[1]["type"] == "telemetry"
    assert by_seq[2]["ts"] is None and by_seq[2]["score"] == 10
    assert by_seq[3]["ts"] == T0 / 1000 and by_seq[3]["boot"] == 0
