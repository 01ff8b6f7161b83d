"""paho's socket, read in large pieces: one `recv` system call for many MQTT packets.

paho reads a PUBLISH with three or four `recv` calls (the command byte, each
remaining-length byte, then the rest: MQTT 3.1.1 section 2.2) and one packet
per pass of its loop, each pass a `select`. `BufferedClient` hands paho a
socket whose `recv` serves from a buffer filled by one large read, and keeps
reading while bytes wait in that buffer. It hooks paho's private
`Client._create_socket` and relies on `_loop` asking the socket's `pending()`
(as it does for TLS): `missing_hooks` says when an installed paho lacks them,
and the receiver then uses plain paho.

On the way out, paho queues each PUBACK as a packet of its own: one wake byte to
its network thread (a loopback `send` from the acknowledging thread) and one
`send` of four bytes from that thread. `BufferedClient.ack_all` queues a whole
batch's PUBACKs as one packet, through paho's private `_packet_queue`, and
`publish_all` a round of QoS 0 messages (the acks to devices, gateway/acks.py)
the same way, where paho's `publish` builds a `MQTTMessageInfo`, with a
`threading.Condition`, for each.

On the way in, paho matches every message's topic against the callbacks added
per topic filter, of which the gateway has none: `BufferedClient` hands each
message straight to `on_message` until one is added.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt

READ_SIZE = 64 * 1024  # one read takes ~200 live events (~300 bytes each) off the kernel
MAX_READS_PER_LOOP = 1000  # then paho's loop sends PUBACKs and keepalives again
# PUBACK, MQTT 3.1.1 section 3.4: type 4 with no flags, remaining length 2, packet identifier
PUBACK = struct.Struct("!BBH")
PUBLISH_QOS0 = bytes([mqtt.PUBLISH])  # fixed header's first byte: type 3, no flags


class BufferedSocket:
    """A connected socket (TCP or TLS) whose `recv(n)` serves from one large read.

    The real `recv` runs only when the buffer is empty, so its exceptions reach
    paho unchanged (`BlockingIOError`, `ssl.SSLWantReadError`, which paho's
    `_sock_recv` turns into `BlockingIOError`). Everything else is the socket's."""

    __slots__ = ("_sock", "_read_size", "_data", "_pos", "_ssl_pending", "reads")

    def __init__(self, sock: socket.socket, read_size: int = READ_SIZE) -> None:
        self._sock = sock
        self._read_size = read_size
        self._data = b""
        self._pos = 0
        self._ssl_pending = getattr(sock, "pending", None)  # ssl.SSLSocket's decrypted bytes
        self.reads = 0  # real `recv` calls, for tests and benchmarks

    def recv(self, size: int) -> bytes:
        data, pos = self._data, self._pos
        if pos >= len(data):
            data = self._sock.recv(max(size, self._read_size))
            self.reads += 1
            if len(data) <= size:  # all of it asked for (or b"" at end of stream)
                return data
            self._data, pos = data, 0
        end = min(pos + size, len(data))
        self._pos = end
        return data[pos:end]

    def pending(self) -> int:
        """Bytes readable without the kernel: paho's `_loop` skips its `select` wait
        while this is positive."""
        buffered = len(self._data) - self._pos
        return buffered + (self._ssl_pending() if self._ssl_pending else 0)

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, data: bytes | bytearray) -> int:
        return self._sock.send(data)

    def close(self) -> None:
        self._data, self._pos, self._ssl_pending = b"", 0, None
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # setblocking, getpeername, settimeout...
        return getattr(self._sock, name)


class BufferedClient(mqtt.Client):
    """paho's `Client` reading through a `BufferedSocket`, many packets per loop pass,
    and acknowledging many messages in one packet."""

    def __init__(self, *args: Any, read_size: int = READ_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_size = read_size
        self._filtered = False  # a callback per topic filter was added: paho's own dispatch

    def _create_socket(self) -> Any:
        """A new connection, so a new, empty buffer: nothing read on an earlier
        connection is ever handed to this one. Websockets keep paho's own wrapper."""
        sock = super()._create_socket()
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            return BufferedSocket(sock, self._read_size)
        return sock

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """paho's read, again while bytes wait in the buffer (a packet cut at the
        buffer's end is finished from the socket, or waits for the next `select`
        when its rest has not arrived)."""
        rc = super().loop_read(max_packets)
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return rc
        passes = 1
        # pending() is 0 once paho has closed the socket (a callback's reconnect)
        while rc == mqtt.MQTT_ERR_SUCCESS and passes < MAX_READS_PER_LOOP and sock.pending() > 0:
            rc = super().loop_read(max_packets)
            passes += 1
        return rc

    def ack_all(self, mids: Iterable[int]) -> None:
        """PUBACK these QoS 1 messages (`manual_ack`) as one queued packet: one wake of
        paho's network thread and one `send` however many (paho's own partial writes
        finish one larger than the kernel takes at once). Thread-safe as `ack` is."""
        packets = b"".join(PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids)
        if packets:
            self._packet_queue(mqtt.PUBACK, packets, 0, 1)

    def publish_all(self, messages: Iterable[tuple[str, bytes]]) -> bool:
        """Publish these at QoS 0, not retained, as one queued packet: one wake of paho's
        network thread and one `send` however many. False where paho's `publish` would
        refuse (not connected, MQTT 5, a topic it would not take), having sent nothing."""
        if self._sock is None or self._protocol == mqtt.MQTTv5:
            return False
        packets = []
        for topic, payload in messages:
            name = topic.encode()
            if not name or len(name) > 65535 or "+" in topic or "#" in topic:
                return False
            packets.append(publish_packet(name, payload))
        if packets:
            info = mqtt.MQTTMessageInfo(0)  # paho marks it published once the packet is written
            rc = self._packet_queue(mqtt.PUBLISH, b"".join(packets), 0, 0, info)
            return rc == mqtt.MQTT_ERR_SUCCESS
        return True

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        """paho's, without walking its topic tree for callbacks per filter while none was
        ever added: `on_message` under the same lock, its exceptions as paho treats them."""
        if self._filtered:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise


def publish_packet(topic: bytes, payload: bytes) -> bytes:
    """One QoS 0 PUBLISH of MQTT 3.1.1 (section 3.3): no packet identifier, no DUP, not
    retained; the remaining length as its variable-length integer (section 2.2.3)."""
    size = 2 + len(topic) + len(payload)
    length = bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | 0x80 if size else digit)
        if not size:
            break
    return b"".join((PUBLISH_QOS0, length, len(topic).to_bytes(2, "big"), topic, payload))


def missing_hooks(client_class: type = mqtt.Client) -> list[str]:
    """What `BufferedClient` relies on and `client_class` lacks (empty: safe to use)."""
    missing = []
    create = getattr(client_class, "_create_socket", None)
    reconnect = getattr(client_class, "reconnect", None)
    if create is None or "_create_socket" not in _names(reconnect):
        missing.append("reconnect() calling _create_socket()")
    if "pending" not in _names(getattr(client_class, "_loop", None)):
        missing.append("_loop() asking the socket's pending()")
    if "_sock_recv" not in _names(getattr(client_class, "_packet_read", None)):
        missing.append("_packet_read() reading through _sock_recv()")
    queue = getattr(getattr(client_class, "_packet_queue", None), "__code__", None)
    if (
        "_packet_queue" not in _names(getattr(client_class, "_send_command_with_mid", None))
        or queue is None
        or queue.co_varnames[1:5] != ("command", "packet", "mid", "qos")
    ):
        missing.append("PUBACKs queued by _packet_queue(command, packet, mid, qos)")
    elif queue.co_varnames[5:6] != ("info",):
        missing.append("QoS 0 publishes queued by _packet_queue(..., info)")
    handle = getattr(client_class, "_handle_on_message", None)
    if "_on_message_filtered" not in _names(handle) or "on_message" not in _names(handle):
        missing.append("_handle_on_message() dispatching to on_message")
    return missing


def _names(function: Any) -> tuple[str, ...]:
    """The attribute and global names a function's code uses (empty if not Python code)."""
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code else ()
