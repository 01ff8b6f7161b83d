"""A paho client on a test broker collecting what it receives under a topic filter,
subscribed (SUBACK received) when made: the firmware's tests and the gateway's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from contract.protocol import parse_event
from nps_edge.broker import Broker


class Subscriber:
    """A paho client on the test broker collecting everything under the topic root."""

    def __init__(
        self,
        broker: Broker,
        topic: str = "nps/v1/#",
        client_id: str = "test-sub",
        clean_session: bool = True,
    ) -> None:
        self.messages: list[tuple[str, bytes | bytearray, bool]] = []  # paho's payload type
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(20):  # what is published after this reaches it
            raise AssertionError(f"no SUBACK for {topic} from {broker.address}")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self._changed.notify_all()

    def wait_messages(
        self, n: int, timeout: float = 10.0
    ) -> list[tuple[str, bytes | bytearray, bool]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < n:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(self.messages)} of {n} messages after {timeout}s")
                self._changed.wait(0.2)
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Every feedback and telemetry payload, validated against the contract models."""
        out = []
        with self._changed:
            messages = list(self.messages)
        for topic, payload, _ in messages:
            if topic.endswith(("/feedback", "/telemetry")):
                event = json.loads(payload)
                parse_event(event)  # raises InvalidEvent on any contract breach
                assert topic.split("/")[2] == event["device"]
                assert topic.endswith("/" + event["type"])
                out.append(event)
        return out

    def wait_for(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if check(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met after {timeout}s; got {len(events)}")
            with self._changed:
                self._changed.wait(0.2)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
