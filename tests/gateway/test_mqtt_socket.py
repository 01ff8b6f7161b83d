"""gateway/mqtt_socket.py: paho reading many packets per `recv`, against a real Mosquitto.

Most tests drive paho's loop by hand (`client.loop()`), so what waits in the
socket at each step is known: the broker's bytes are counted in the kernel
(FIONREAD) before the client reads any of them.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.metrics import Metrics
from gateway.mqtt_socket import BufferedClient, BufferedSocket, missing_hooks
from gateway.receiver import Receiver, client_class
from nps_edge.broker import Broker, start_mosquitto
from nps_edge.processes import wait_until
from tests.gateway.processes import Publisher

TOPIC = "burst/t"


@dataclass
class Subscriber:
    """A `BufferedClient` as the gateway sets it up (persistent session, QoS 1, manual
    PUBACK), acknowledging each message as it arrives; `loop_until` runs paho's loop."""

    broker: Broker
    read_size: int = 64 * 1024
    client_id: str = field(default_factory=lambda: f"sub-{uuid.uuid4().hex[:8]}")
    received: list[tuple[bytes, bool]] = field(default_factory=list)  # (payload, dup)
    subscribed: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
            read_size=self.read_size,
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_disconnect = lambda *args: self.gone.set()
        self.client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received.append((bytes(msg.payload), bool(msg.dup)))
        client.ack(msg.mid, msg.qos)

    def connect(self) -> None:
        self.subscribed.clear()
        self.client.connect(self.broker.host, self.broker.port)
        self.loop_until(self.subscribed.is_set, "subscribed")

    def loop_until(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.client.loop(timeout=0.05)

    @property
    def sock(self) -> BufferedSocket:
        sock = self.client.socket()
        assert isinstance(sock, BufferedSocket)
        return sock

    def unread(self) -> int:
        """Bytes waiting in the kernel for this connection (FIONREAD)."""
        raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def disconnect(self) -> None:
        """Until the broker has read our DISCONNECT, and so every PUBACK before it (it
        reads a packet per pass: 500 PUBACKs can still wait when our socket is closed)."""
        assert self.broker.log is not None
        said = f"Client {self.client_id} disconnected."
        before = self.broker.log.read_text().count(said)
        self.gone.clear()
        self.client.disconnect()
        self.loop_until(self.gone.is_set, "DISCONNECT sent")
        log = self.broker.log
        wait_until(lambda: log.read_text().count(said) > before, timeout=20, what=said)


def publish_size(topic: str, payload: bytes) -> int:
    """Bytes of a QoS 1 PUBLISH (MQTT 3.1.1 section 3.3): fixed header with the
    remaining length's varint, topic, packet identifier, payload."""
    remaining = 2 + len(topic.encode()) + 2 + len(payload)
    return 1 + (1 + (remaining >= 128) + (remaining >= 16384)) + remaining


def publish(broker: Broker, payloads: list[bytes]) -> None:
    publisher = Publisher(broker.address)
    try:
        publisher.publish((TOPIC, p) for p in payloads)
    finally:
        publisher.close()


@pytest.fixture
def subscriber(mqtt_broker: Broker) -> Iterator[Subscriber]:
    if mqtt_broker.kind != "mosquitto":
        pytest.skip("these tests count Mosquitto's bytes")
    sub = Subscriber(mqtt_broker)
    yield sub
    sub.client.disconnect()


def test_the_installed_paho_has_the_hooks_and_the_receiver_uses_them():
    """Fails when a paho upgrade removes or renames what BufferedClient hooks."""
    assert missing_hooks() == []
    assert client_class() is BufferedClient
    receiver = Receiver("127.0.0.1:1883", "gw", lambda *a: None, Metrics(), root="nps/v1")
    assert isinstance(receiver.client, BufferedClient)


class PahoWithoutTheHook(mqtt.Client):
    """A paho whose reconnect() makes its socket some other way."""

    def reconnect(self) -> mqtt.MQTTErrorCode:
        return mqtt.MQTT_ERR_SUCCESS


def test_a_paho_without_the_hooks_falls_back_to_plain_paho_and_says_so(caplog):
    caplog.set_level(logging.WARNING, logger="nps_edge")
    assert client_class(PahoWithoutTheHook) is PahoWithoutTheHook
    assert "receiving with plain paho" in caplog.text
    assert "_create_socket" in str([getattr(r, "fields", {}) for r in caplog.records])


def test_recv_serves_many_reads_from_one_and_empty_raises_as_the_socket_does():
    left, right = socket.socketpair()
    with left, right:
        right.setblocking(False)
        sock = BufferedSocket(right, read_size=1024)
        left.sendall(b"\x30\x05hello" + b"\x30\x03abc")
        assert [sock.recv(1), sock.recv(1), sock.recv(5)] == [b"\x30", b"\x05", b"hello"]
        assert (sock.reads, sock.pending()) == (1, 5)
        assert sock.recv(100) == b"\x30\x03abc"  # no more than the buffer holds
        assert sock.pending() == 0
        with pytest.raises(BlockingIOError):
            sock.recv(1)
        left.sendall(b"x" * 3000)
        assert len(sock.recv(3000)) == 3000  # asked for more than a buffer: straight through
        left.sendall(b"abc")
        assert (sock.recv(1), sock.pending()) == (b"a", 2)
        left.close()
        assert sock.recv(5) == b"bc"
        assert sock.recv(1) == b""  # end of stream, as paho expects
        left2, right2 = socket.socketpair()
        with left2:
            closing = BufferedSocket(right2)
            left2.sendall(b"abc")
            closing.recv(1)
            closing.close()
            assert closing.pending() == 0  # BufferedClient.loop_read stops on a closed socket


def test_many_messages_waiting_in_the_socket_are_read_at_once_and_all_acked(subscriber):
    subscriber.connect()
    payloads = [b"%05d" % i + b"x" * 95 for i in range(500)]
    publish(subscriber.broker, payloads)  # the subscriber's loop is not running
    expected = sum(publish_size(TOPIC, p) for p in payloads)
    assert expected < 64 * 1024
    wait_until(lambda: subscriber.unread() >= expected, timeout=20, what="all in the socket")
    reads_before = subscriber.sock.reads

    subscriber.loop_until(lambda: len(subscriber.received) == 500, "500 messages")
    assert [p for p, _ in subscriber.received] == payloads
    assert subscriber.sock.reads - reads_before <= 2  # one read, maybe one more finding none

    # Acknowledged: away, a sentinel is queued; back, it is all the broker sends.
    subscriber.disconnect()
    subscriber.received.clear()
    publish(subscriber.broker, [b"sentinel"])
    subscriber.connect()
    subscriber.loop_until(lambda: len(subscriber.received) >= 1, "the sentinel")
    subscriber.client.loop(timeout=0.2)
    assert subscriber.received == [(b"sentinel", False)]


def test_messages_larger_than_the_buffer_and_cut_at_its_end_arrive_whole(mqtt_broker):
    if mqtt_broker.kind != "mosquitto":
        pytest.skip("these tests count Mosquitto's bytes")
    sub = Subscriber(mqtt_broker, read_size=256)
    sub.connect()
    payloads = [bytes([65 + i % 26]) * (7000 if i % 5 == 0 else 50 + 37 * i) for i in range(40)]
    publish(mqtt_broker, payloads)
    expected = sum(publish_size(TOPIC, p) for p in payloads)
    wait_until(lambda: sub.unread() >= expected, timeout=20, what="all in the socket")
    sub.loop_until(lambda: len(sub.received) == 40, "40 messages")
    assert [p for p, _ in sub.received] == payloads
    sub.client.disconnect()


def test_after_a_broker_restart_nothing_buffered_on_the_old_connection_is_replayed(
    mqtt_broker, subscriber
):
    subscriber.connect()
    payloads = [b"%03d" % i for i in range(50)]
    publish(mqtt_broker, payloads)
    expected = sum(publish_size(TOPIC, p) for p in payloads)
    wait_until(lambda: subscriber.unread() >= expected, timeout=20, what="all in the socket")
    mqtt.Client.loop_read(subscriber.client)  # paho's own: one packet, 49 left in the buffer
    old = subscriber.sock
    assert [p for p, _ in subscriber.received] == payloads[:1]
    assert old.pending() == expected - publish_size(TOPIC, payloads[0])

    mqtt_broker.stop()  # its PUBACK never left: the broker saves all 50 as unacknowledged
    assert mqtt_broker.workdir is not None
    restarted = start_mosquitto(mqtt_broker.workdir, mqtt_broker.port)
    try:
        subscriber.received.clear()
        subscriber.subscribed.clear()
        assert subscriber.client.reconnect() == mqtt.MQTT_ERR_SUCCESS
        assert subscriber.sock is not old
        subscriber.loop_until(subscriber.subscribed.is_set, "subscribed again")
        subscriber.loop_until(lambda: len(subscriber.received) >= 50, "the 50 redelivered")
        publish(restarted, [b"after"])
        subscriber.loop_until(lambda: subscriber.received[-1][0] == b"after", "a new message")
        # Each once, from the broker (DUP set: MQTT 3.1.1 section 3.3.1.1), none from old.
        assert subscriber.received == [(p, True) for p in payloads] + [(b"after", False)]
        subscriber.disconnect()
    finally:
        restarted.stop()


def test_a_lone_message_after_a_burst_is_not_held_in_the_buffer(subscriber):
    """paho's loop waits in `select` unless `pending()` says bytes wait in the buffer:
    without it the last messages of a burst would sit there until the next packet
    (a keepalive away). Threaded, as the gateway runs it."""
    subscriber.connect()
    subscriber.client.loop_start()
    publisher = Publisher(subscriber.broker.address)
    try:
        latencies = []
        for round_ in range(3):
            burst = [b"%d-%04d" % (round_, i) + b"y" * 200 for i in range(300)]
            lone = b"%d-lone" % round_
            publisher.publish((TOPIC, p) for p in burst)
            sent = time.monotonic()
            publisher.publish([(TOPIC, lone)])
            wait_until(
                lambda lone=lone: subscriber.received and subscriber.received[-1][0] == lone,
                timeout=5,
                what="the lone message",
            )
            latencies.append(time.monotonic() - sent)
        # held in the buffer it would wait for the next packet from the broker (the
        # keepalive's PINGRESP, 60 s away), not just paho's 1 s select timeout
        assert max(latencies) < 1.0, latencies
        assert len(subscriber.received) == 3 * 301
    finally:
        publisher.close()
        subscriber.client.loop_stop()
