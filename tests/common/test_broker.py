"""The brokers the tests and the demo rely on accept a QoS 1 publish."""

from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import Broker


def roundtrip(broker: Broker) -> bytes | bytearray:
    got: queue.Queue[bytes | bytearray] = queue.Queue()  # paho: payload is bytes | bytearray
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rt-sub")
    sub.on_message = lambda c, u, m: got.put(m.payload)
    sub.connect(broker.host, broker.port)
    sub.subscribe("rt/#", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rt-pub")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for _ in range(50):  # until the subscription is in place (bounded)
            pub.publish("rt/x", b"hello", qos=1).wait_for_publish(2)
            try:
                return got.get(timeout=0.2)
            except queue.Empty:
                continue
        raise AssertionError("no message came back through the broker")
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_mosquitto_fixture_roundtrip(mqtt_broker: Broker) -> None:
    assert roundtrip(mqtt_broker) == b"hello"


def test_embedded_amqtt_roundtrip(amqtt_broker: Broker) -> None:
    assert amqtt_broker.kind == "amqtt"
    assert roundtrip(amqtt_broker) == b"hello"
