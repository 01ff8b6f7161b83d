"""The real firmware keeps each event until the gateway's ack covers it (a stand-in gateway
acks here, on a bare Mosquitto): a gap goes again, hostile acks are counted and forget nothing."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from nps_edge.broker import Broker
from nps_edge.processes import wait_until
from tests.firmware.test_device_durability import T0, prompts, saved_seqs

pytestmark = pytest.mark.slow
DEVICE = "nps-a1b2c3"
CMD = f"nps/v1/{DEVICE}/cmd"


class StandInGateway:
    """Acks every event it receives, one message each, except the first delivery of `lose`
    (as if the broker had lost it after its PUBACK)."""

    def __init__(self, broker: Broker, lose: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.lose = set(lose)
        self.received: list[int] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stand-in-gw")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("nps/v1/+/feedback", 1), ("nps/v1/+/telemetry", 1)])
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        with self.lock:
            if seq in self.lose:
                self.lose.discard(seq)
                return
            self.received.append(seq)
        device = msg.topic.split("/")[2]
        client.publish(f"nps/v1/{device}/cmd", b'{"ack":[[%d,%d]]}' % (seq, seq), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def confirmed(dev: Any, kind: str = "f") -> int:
    """The device's trim point for kind, from its last `confirmed` line (0 before any)."""
    lines = [ln for ln in dev.lines if ln.startswith(f"confirmed {kind} ")]
    return int(lines[-1].split()[2]) if lines else 0


def last_telemetry(subscriber: Any, after_seq: int) -> dict[str, Any]:
    events = subscriber.wait_for(
        lambda evs: any(e["type"] == "telemetry" and e["seq"] > after_seq for e in evs)
    )
    return [e for e in events if e["type"] == "telemetry"][-1]


def test_what_the_gateway_confirmed_is_never_sent_again_and_the_rest_is(
    devices, config, mqtt_broker, subscriber
) -> None:
    folder = devices.folder("d", config(mqtt_broker, sim={"start_ms": T0}))
    gateway = StandInGateway(mqtt_broker)
    dev = devices.start(folder)
    dev.send(*prompts(3, T0 + 60000, random.Random(1)))
    dev.wait_for("saved f ", count=3)
    saved = saved_seqs(dev)
    wait_until(lambda: confirmed(dev) == max(saved), 20, "the gateway's acks")
    gateway.close()  # the gateway goes away: what comes now is PUBACKed, never confirmed
    dev.send(*prompts(2, T0 + 10 * 60000, random.Random(2)))
    dev.wait_for("acked f ", count=5)
    unconfirmed = saved_seqs(dev) - saved
    dev.close_input()
    assert dev.wait() == 0  # drained: the broker has everything
    assert confirmed(dev) == max(saved)

    again = devices.start(folder)
    again.close_input()
    assert again.wait() == 0
    resent = {int(ln.split()[2]) for ln in again.lines if ln.startswith("acked f ")}
    assert resent == unconfirmed  # the unconfirmed ones, and only those, went again


def test_a_gap_the_broker_lost_goes_again_after_the_wait_and_only_the_gap(
    devices, config, mqtt_broker, subscriber
) -> None:
    cfg = config(mqtt_broker, sim={"start_ms": T0}, outbox={"confirm_timeout_s": 1})
    gateway = StandInGateway(mqtt_broker, lose={3, 4})
    dev = devices.start(devices.folder("d", cfg))
    dev.send(*prompts(5, T0 + 60000, random.Random(3)))
    dev.wait_for("saved f ", count=5)
    saved = saved_seqs(dev)
    assert {3, 4} <= saved  # seq 1 is the boot telemetry
    # The gateway has everything but 3 and 4; they come again after a second, alone.
    top = max(saved)
    wait_until(lambda: confirmed(dev) == top, 20, "the device to confirm every answer")
    with gateway.lock:
        received = list(gateway.received)
    assert sorted(received) == sorted(set(received))  # nothing confirmed was sent twice
    assert set(received) >= saved
    dev.send("telemetry")
    assert last_telemetry(subscriber, top)["errors"].get("outbox_resend", 0) >= 1
    gateway.close()


def test_hostile_acks_are_counted_and_forget_nothing(
    devices, config, mqtt_broker, subscriber
) -> None:
    dev = devices.start(devices.folder("d", config(mqtt_broker, sim={"start_ms": T0})))
    dev.send(*prompts(2, T0 + 60000, random.Random(4)))
    dev.wait_for("acked f ", count=2)
    top = max(saved_seqs(dev))
    hostile = [
        b'{"ack":[[1,%d]]' % top,  # cut short
        b'{"ack":[[1,99999999999]]}',  # past the newest seq
        b'{"ack":[[-5,3]]}',
        b'{"ack":[[3,1]]}',
        b'{"ack":' + b"[" * 900 + b"]}",
        b'{"ack":[[1,1],[2,"x"]]}',
    ]
    poster = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hostile")
    poster.connect(mqtt_broker.host, mqtt_broker.port)
    poster.loop_start()
    for payload in hostile:
        poster.publish(CMD, payload, qos=1).wait_for_publish(5)
    poster.publish(CMD, b'{"ack":[[1,1]]}', qos=1).wait_for_publish(5)  # a good one, last
    poster.disconnect()
    poster.loop_stop()
    dev.wait_for("confirmed t 1")
    dev.send("telemetry")
    tm = last_telemetry(subscriber, top)
    assert tm["errors"]["ack_bad"] == len(hostile)
    assert tm["outbox_depth"] == 2  # both answers still wait for the gateway
    assert confirmed(dev) == 0 and dev.proc.poll() is None
