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
batch's PUBACKs as one packet, through paho's private `_packet_queue`.
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
    return missing


def _names(function: Any) -> tuple[str, ...]:
    """The attribute and global names a function's code uses (empty if not Python code)."""
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code else ()
