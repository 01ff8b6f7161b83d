"""Any device that speaks the contract is accepted; bad payloads are counted, not fatal.

Events are hand-written and published with a client that is not ours
(`mosquitto_pub`, else paho), around malformed ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.processes import gateway_status

pytestmark = pytest.mark.slow

DEVICE = "kiosk-hand-01"


def event(seq: int, **over: object) -> dict:
    body = {
        "v": 1,
        "id": f"{DEVICE}:{seq}",
        "device": DEVICE,
        "site": "e2e-site",
        "seq": seq,
        "boot": 1,
        "up_ms": 1000 * seq,
        "ts": 1795000000 + seq,
        "fw": "other-vendor-2.1",
        "type": "feedback",
        "outcome": "answered",
        "score": 9,
        "prompt": "nps",
        "trigger": {"kind": "cycle_complete", "ref": f"tx-{seq}"},
        "reason": None,
        "answer_ms": 1500,
        "ctx": {"rssi": -55, "battery_mv": None},
    }
    body.update(over)
    return body


def publish(broker, topic: str, payload: bytes) -> None:
    if shutil.which("mosquitto_pub"):
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-q",
                "1",
                "-t",
                topic,
                "-s",
            ],
            input=payload,
            check=True,
            timeout=10,
        )
        return
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hand-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def test_hand_written_events_and_malformed_ones(site) -> None:
    topic = f"nps/v1/{DEVICE}/feedback"
    good = [
        event(1, score=10),
        event(2, score=3, reason="wait_time"),
        event(3, outcome="timeout", score=None),
        event(6, score=8),
    ]
    bad = [
        (topic, b"this is not json"),
        (topic, json.dumps(event(4, score=11)).encode()),
        (topic, json.dumps(event(5, score=True)).encode()),
        ("nps/v1/another-device/feedback", json.dumps(event(7)).encode()),
    ]
    for payload in (good[0], good[1]):
        publish(site.broker, topic, json.dumps(payload).encode())
    for where, raw in bad:
        publish(site.broker, where, raw)
    for payload in (good[2], good[3]):
        publish(site.broker, topic, json.dumps(payload).encode())

    site.wait_for(lambda: site.get("/api/v1/nps")["shown"] >= 4, "the four good events")
    figures = site.get("/api/v1/nps", device=DEVICE)
    # scores 10, 3, 8 answered; one timeout: NPS = (1 - 1) / 3
    assert (figures["n"], figures["shown"]) == (3, 4)
    assert (figures["promoters"], figures["passives"], figures["detractors"]) == (1, 1, 1)
    assert figures["nps"] == 0.0
    gaps = site.get(f"/api/v1/devices/{DEVICE}/gaps")
    assert gaps["max_seq"] == 6 and gaps["missing"] == [[4, 5]]

    # The four bad payloads are counted with their reasons, at the edge or by the server.
    site.wait_for(lambda: gateway_status(site.store)["dead_letters"]["rows"] == 4, "4 dead letters")
    status = gateway_status(site.store)
    assert status["depth"] == 0 and status["forwarded"] == 4
    text = subprocess.run(
        [site.nps_edge, "gateway", "status", "--store", str(site.store)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for reason in ("not JSON", "score", "another-device"):
        assert reason in text, (reason, text)
