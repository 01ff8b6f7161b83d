"""gateway/mqtt_socket.py: paho reading many packets per `recv` and acknowledging a batch
in one packet, against a real Mosquitto.

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

from gateway.intake import Message
from gateway.metrics import Metrics
from gateway.mqtt_socket import (
    PUBACK,
    BufferedClient,
    BufferedSocket,
    missing_hooks,
    publish_packet,
)
from gateway.receiver import Receiver, client_class
from nps_edge.broker import Broker, start_mosquitto
from nps_edge.processes import wait_until
from tests.gateway.processes import Publisher
from tests.mqtt_subscriber import Subscriber as Collector

TOPIC = "burst/t"


@dataclass
class Subscriber:
    """A `BufferedClient` as the gateway sets it up (persistent session, QoS 1, manual
    PUBACK), acknowledging each message as it arrives; `loop_until` runs paho's loop."""

    broker: Broker
    read_size: int = 64 * 1024
    client_id: str = field(default_factory=lambda: f"sub-{uuid.uuid4().hex[:8]}")
    acking: bool = True  # False: the test acknowledges, `mids` in hand
    received: list[tuple[bytes, bool]] = field(default_factory=list)  # (payload, dup)
    mids: list[int] = field(default_factory=list)
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
        self.mids.append(msg.mid)
        if self.acking:
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
        return fionread(self.sock)

    def unread_wakes(self) -> int:
        """Wake bytes waiting for paho's loop: one per packet queued (paho's socketpair)."""
        wake = self.client._sockpairR
        assert wake is not None
        return fionread(wake)

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


def fionread(sock: Any) -> int:
    """Bytes waiting in the kernel to be read from `sock`."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


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


class CountingWake:
    """paho's wake socket (`_sockpairW`), counting the bytes paho writes to wake its loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sends = sock, 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_a_burst_acked_as_one_batch_wakes_paho_once_and_none_is_redelivered(subscriber):
    subscriber.acking = False
    subscriber.connect()
    wake = CountingWake(subscriber.client._sockpairW)  # type: ignore[arg-type]
    subscriber.client._sockpairW = wake  # type: ignore[assignment]
    payloads = [b"%05d" % i + b"z" * 40 for i in range(500)]
    publish(subscriber.broker, payloads)  # shipped max_inflight_messages 1000: all 500 come
    subscriber.loop_until(lambda: len(subscriber.received) == 500, "500 messages unacked")

    subscriber.client.ack_all(subscriber.mids)  # paho's loop is not running: written now
    assert wake.sends == 1  # paho's ack() wakes its loop once per PUBACK: 500

    subscriber.disconnect()  # the broker has read every PUBACK before the DISCONNECT
    subscriber.received.clear()
    publish(subscriber.broker, [b"sentinel"])
    subscriber.acking = True
    subscriber.connect()
    # an unacknowledged message would be redelivered before the queued sentinel
    subscriber.loop_until(lambda: len(subscriber.received) >= 1, "the sentinel")
    assert subscriber.received == [(b"sentinel", False)]
    subscriber.disconnect()


class PahoQueueingPubacksItsOwnWay(mqtt.Client):
    """A paho whose PUBACKs do not go through `_packet_queue` (as a later one's might not)."""

    def _send_command_with_mid(self, command: int, mid: int, dup: int) -> mqtt.MQTTErrorCode:
        return super()._send_command_with_mid(command, mid, dup)


@pytest.mark.parametrize("paho_client", [mqtt.Client, PahoQueueingPubacksItsOwnWay])
def test_the_receiver_acks_committed_batches_and_the_broker_keeps_none(mqtt_broker, paho_client):
    """The gateway's threaded client, with the hook (one packet a batch) and without
    (paho's `ack` for each message)."""
    if mqtt_broker.kind != "mosquitto":
        pytest.skip("reads Mosquitto's log")
    assert mqtt_broker.log is not None
    broker_log = mqtt_broker.log
    client_id = f"gw-{uuid.uuid4().hex[:8]}"
    topic = "nps/v1/nps-a1b2c3/feedback"
    messages: list[Message] = []

    def offer(mid: int, qos: int, topic: str, payload: bytes, conn: int) -> None:
        messages.append(Message(mid, qos, topic, payload, 0.0, conn))  # paho's thread

    def start() -> Receiver:
        receiver = Receiver(
            mqtt_broker.address, client_id, offer, Metrics(), root="nps/v1", paho_client=paho_client
        )
        receiver.start()
        wait_until(receiver.subscribed.is_set, timeout=20, what="subscribed")
        return receiver

    receiver = start()
    try:
        with_hook = BufferedClient if paho_client is mqtt.Client else paho_client
        assert type(receiver.client) is with_hook
        publisher = Publisher(mqtt_broker.address)
        try:
            publisher.publish((topic, b"%03d" % i) for i in range(300))
        finally:
            publisher.close()
        wait_until(lambda: len(messages) == 300, timeout=20, what="300 messages")
        receiver.ack(messages[:120])  # two commits
        receiver.ack(messages[120:])
    finally:
        receiver.stop()  # its DISCONNECT leaves after every PUBACK
    said = f"Client {client_id} disconnected."
    wait_until(lambda: said in broker_log.read_text(), timeout=20, what=said)

    messages.clear()
    receiver = start()  # an unacknowledged message would come again, before the next one
    try:
        publisher = Publisher(mqtt_broker.address)
        try:
            publisher.publish([(topic, b"after")])
        finally:
            publisher.close()
        wait_until(lambda: len(messages) >= 1, timeout=20, what="the message after")
        assert [m.payload for m in messages] == [b"after"]
    finally:
        receiver.stop()


def test_a_batch_larger_than_the_kernel_takes_arrives_whole_and_in_order():
    """The intake's largest batch is 5,000 (20 KB of PUBACKs); here 20,000 against the
    smallest buffers the kernel allows, a peer not reading: paho writes part of the
    packet, waits for the socket (`want_write()`), then writes the rest."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # the accepted socket's
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = BufferedClient(
        CallbackAPIVersion.VERSION2, client_id="acks", protocol=mqtt.MQTTv311, manual_ack=True
    )
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    with listener:
        client.connect(*listener.getsockname())
        peer, _ = listener.accept()
    with peer:
        connect = peer.recv(2)  # CONNECT (MQTT 3.1.1 section 3.1): short, one length byte
        assert connect[0] == 0x10
        while len(connect) < 2 + connect[1]:
            connect += peer.recv(2 + connect[1] - len(connect))
        peer.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted (section 3.2)
        deadline = time.monotonic() + 10
        while not connected.is_set():
            assert time.monotonic() < deadline, "no CONNACK"
            client.loop(timeout=0.05)
        client.socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)

        mids = [1 + i % 65535 for i in range(20_000)]
        client.ack_all(mids)
        assert client.want_write()  # the kernel took part: paho holds the rest

        expected = b"".join(PUBACK.pack(0x40, 2, mid) for mid in mids)
        peer.setblocking(False)
        got = bytearray()
        deadline = time.monotonic() + 20
        while len(got) < len(expected):
            assert time.monotonic() < deadline, f"{len(got)} of {len(expected)} bytes"
            client.loop(timeout=0.01)
            try:
                got += peer.recv(65536)
            except BlockingIOError:
                pass
        assert got == expected
        assert not client.want_write()
    client.socket().close()


def listener(broker: Broker, topic: str) -> Collector:
    """A plain paho client collecting what is published under `topic`."""
    return Collector(broker, topic, client_id=f"listener-{uuid.uuid4().hex[:8]}")


def received(sub: Collector, n: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of the first `n` messages, once that many came."""
    return [(topic, bytes(payload)) for topic, payload, _ in sub.wait_messages(n, timeout=20)]


def test_a_round_of_qos0_publishes_is_one_packet_and_each_arrives_whole(subscriber):
    """The acks' round (gateway/acks.py): 300 devices' topics, payloads whose remaining
    length takes one byte and two (MQTT 3.1.1 section 2.2.3; three: the test below)."""
    subscriber.connect()
    acks = listener(subscriber.broker, "acks/+/cmd")
    try:
        wake = CountingWake(subscriber.client._sockpairW)  # type: ignore[arg-type]
        subscriber.client._sockpairW = wake  # type: ignore[assignment]
        round_ = [
            (f"acks/nps-{i:06x}/cmd", b'{"ack":[[%d,%d]]}' % (i, i) + b" " * (20, 200)[i % 2])
            for i in range(300)
        ]
        assert subscriber.client.publish_all(round_)
        assert wake.sends == 1  # paho's publish() wakes its loop once per message: 300
        subscriber.loop_until(lambda: not subscriber.client.want_write(), "the round written")
        assert sorted(received(acks, 300)) == sorted(round_)
    finally:
        acks.close()
        subscriber.disconnect()


class Connected:
    """Stands for a connection in `Client._sock`, where paho only asks whether there is one."""

    def close(self) -> None:
        pass


class PacketsPahoQueues(mqtt.Client):
    """paho, keeping each packet it would queue instead of sending it."""

    queued: list[bytes]

    def _packet_queue(self, command: int, packet: Any, mid: int, qos: int, info: Any = None) -> Any:
        self.queued.append(bytes(packet))
        return mqtt.MQTT_ERR_SUCCESS


@pytest.mark.parametrize("size", [0, 1, 100, 118, 119, 16_000, 16_374, 16_375, 2_100_000])
def test_a_publish_packet_is_byte_for_byte_the_one_paho_builds(size: int) -> None:
    """Around each edge of the remaining length's varint: 127 | 128, 16383 | 16384."""
    paho = PacketsPahoQueues(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    paho.queued = []
    paho._sock = Connected()  # type: ignore[assignment]
    topic, payload = (
        b"nps/v1/nps-a1b2c3/cmd",
        bytes(range(256)) * (size // 256) + b"x" * (size % 256),
    )
    assert paho._send_publish(0, topic, payload, 0, False) == mqtt.MQTT_ERR_SUCCESS
    assert publish_packet(topic, payload) == paho.queued[0]


def test_a_round_paho_would_refuse_is_not_sent_at_all(mqtt_broker):
    client = BufferedClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    assert not client.publish_all([("acks/a/cmd", b"x")])  # not connected
    acks = listener(mqtt_broker, "acks/#")
    try:
        client.connect(mqtt_broker.host, mqtt_broker.port)
        client.loop_start()
        for bad in ("acks/+/cmd", "acks/#", ""):
            assert not client.publish_all([("acks/a/cmd", b"good"), (bad, b"bad")]), bad
        assert client.publish_all([("acks/b/cmd", b"last")])
        assert received(acks, 1) == [("acks/b/cmd", b"last")]
        time.sleep(0.2)
        assert len(acks.messages) == 1  # nothing of the refused rounds
    finally:
        client.loop_stop()
        client.disconnect()
        acks.close()
    v5 = BufferedClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    v5._sock = Connected()  # type: ignore[assignment]  # the protocol alone refuses
    assert not v5.publish_all([("acks/a/cmd", b"x")])


def test_on_message_is_called_directly_until_a_filtered_callback_is_added(subscriber):
    """paho's dispatch without its topic tree, as paho does it: the lock held, an
    exception raised (suppress_exceptions False) or logged; once a callback per filter
    is added, paho's own dispatch (that callback, not on_message, for its topics)."""
    seen: list[str] = []
    subscriber.client.on_message = lambda c, u, m: seen.append(f"on_message {m.payload!r}")
    message = mqtt.MQTTMessage(topic=TOPIC.encode())
    message.payload = b"1"
    subscriber.client._handle_on_message(message)
    assert seen == ["on_message b'1'"]

    held: list[bool] = []

    def boom(client: Any, userdata: Any, msg: Any) -> None:
        held.append(not client._in_callback_mutex.acquire(blocking=False))
        raise ValueError("bad callback")

    subscriber.client.on_message = boom
    with pytest.raises(ValueError, match="bad callback"):
        subscriber.client._handle_on_message(message)
    assert held == [True]
    subscriber.client.suppress_exceptions = True
    subscriber.client._handle_on_message(message)  # logged, not raised
    subscriber.client.suppress_exceptions = False

    subscriber.client.on_message = lambda c, u, m: seen.append(f"on_message {m.payload!r}")
    subscriber.client.message_callback_add(TOPIC, lambda c, u, m: seen.append("filtered"))
    subscriber.client._handle_on_message(message)
    other = mqtt.MQTTMessage(topic=b"other/t")
    other.payload = b"2"
    subscriber.client._handle_on_message(other)
    assert seen[1:] == ["filtered", "on_message b'2'"]


def test_the_receiver_publishes_a_round_with_the_hook_and_without(mqtt_broker):
    """`Receiver.publish_all`: one packet with the hook, paho's `publish` for each without;
    False while not connected, so that the acks wait for the next round."""
    cmds = listener(mqtt_broker, "nps/v1/+/cmd")
    try:
        for paho_client in (mqtt.Client, PahoQueueingPubacksItsOwnWay):
            receiver = Receiver(
                mqtt_broker.address, f"gw-{uuid.uuid4().hex[:8]}", lambda *a: None, Metrics(),
                root="nps/v1", paho_client=paho_client,
            )  # fmt: skip
            assert not receiver.publish_all([("nps/v1/nps-a1b2c3/cmd", b"early")])
            receiver.start()
            try:
                wait_until(receiver.subscribed.is_set, timeout=20, what="subscribed")
                name = paho_client.__name__.encode()
                round_ = [(f"nps/v1/nps-{i:06x}/cmd", name + b"%d" % i) for i in range(50)]
                assert receiver.publish_all(round_)
                assert sorted(received(cmds, 50)) == sorted(round_)
                cmds.messages.clear()
            finally:
                receiver.stop()
    finally:
        cmds.close()
