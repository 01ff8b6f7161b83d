"""The MQTT adapter: a persistent QoS 1 session whose PUBACKs wait for the store commit.

`clean_session=False` with a fixed client id makes the broker keep our
subscriptions and queue messages while we are away (MQTT 3.1.1 section 3.1.2.4);
`manual_ack=True` holds back each PUBACK until `Intake` has committed the
message (section 4.3.2), so a gateway killed at any instant loses nothing: the
broker redelivers what was not acknowledged, and the store's unique event id
makes the redelivery harmless.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.intake import Message, Offer
from gateway.logs import log_event
from gateway.metrics import Metrics

log = logging.getLogger("nps_edge.gateway.receiver")

KINDS = ("feedback", "telemetry", "status")


def parse_broker(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `HOST` (port 1883) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, 1883
    if not port.isdigit():
        raise ValueError(f"broker must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Receiver:
    def __init__(
        self,
        broker: str,
        client_id: str,
        offer: Offer,
        metrics: Metrics,
        *,
        root: str,
        keepalive: int = 30,
    ) -> None:
        self.host, self.port = parse_broker(broker)
        self.offer = offer
        self.metrics = metrics
        self.root = root.rstrip("/")
        self.keepalive = keepalive
        self.connected = threading.Event()
        self._generation = 0
        self._taking = True
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_connect_fail = self._on_connect_fail
        self._failed_connects = 0
        self.subscribed = threading.Event()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop_taking(self) -> None:
        """Ignore further messages: not acknowledged, so the broker keeps them for next time."""
        self._taking = False

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, message: Message) -> None:
        """PUBACK a committed message, if it came on the current connection.

        A message from an earlier connection is redelivered by the broker on this
        one (with DUP set); the store sees its id again and it is acknowledged then.
        """
        if message.conn == self._generation and message.qos > 0:
            self.client.ack(message.mid, message.qos)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log_event(log, logging.ERROR, "broker refused connection", reason=str(reason))
            return
        self._generation += 1
        self._failed_connects = 0
        self.connected.set()
        self.metrics.broker_connected.set(1)
        client.subscribe([(f"{self.root}/+/{kind}", 1) for kind in KINDS])
        log_event(
            log,
            logging.INFO,
            "connected to broker",
            broker=f"{self.host}:{self.port}",
            session_present=bool(flags.session_present),
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """paho retries by itself (1 s to 15 s apart): log the first two, then every sixth."""
        self._failed_connects += 1
        if self._failed_connects in (1, 2) or self._failed_connects % 6 == 0:
            log_event(
                log,
                logging.WARNING,
                "cannot reach the broker, retrying",
                broker=f"{self.host}:{self.port}",
                attempts=self._failed_connects,
            )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log_event(log, logging.ERROR, "broker refused subscription", reasons=failed)
            return
        self.subscribed.set()
        log_event(log, logging.INFO, "subscribed", filters=[f"{self.root}/+/{k}" for k in KINDS])

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.metrics.broker_connected.set(0)
        log_event(log, logging.WARNING, "disconnected from broker", reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._taking:
            self.offer(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self._generation)
