"""A small non-blocking MQTT 3.1.1 client for QoS 1 publishing from a device.

The application calls poll() from its loop; nothing here waits on the
network (DNS aside, see docs/firmware.md). It keeps a window of in-flight
QoS 1 PUBLISH packets, re-sends them with DUP set after a reconnect, and
reports each PUBACK through on_ack(tag, packet) so the outbox deletes only
what the broker confirmed. Section numbers: MQTT 3.1.1 specification.
"""

import errno
import socket
import time

import mqtt_codec as codec
from micropython import const

OFFLINE = const(0)  # waiting for the next attempt (backoff)
CONNECTING = const(1)  # CONNECT queued; TCP (and TLS) handshake in progress
UP = const(2)  # CONNACK accepted
_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
_DUP = const(0x08)  # 3.3.1.1: the DUP flag in a PUBLISH fixed header
# Both buffers are allocated once per client (docs/firmware.md, Heap). TX holds
# a whole PUBLISH of the largest outbox record (records.RECORD_BYTES) plus its
# topic; RX the largest packet accepted from the broker (larger: protocol error).
_TX_BYTES = const(1280)
_TX_ROOM = const(1100)  # room for one more PUBLISH of a whole record
RX_BYTES = const(1024)
# Allocated once, when this module loads (main.py loads it first); one client per device.
_TX = bytearray(_TX_BYTES)
_RX = bytearray(RX_BYTES)
# An in-flight entry is a list [packet, tag, ticks when sent]: packet only for
# untagged publishes (status); a tagged one is read back through reload(tag) to be
# re-sent, so no packet stays in the heap while it waits for its PUBACK.
_PACKET = const(0)
_TAG = const(1)
_SENT = const(2)


# host -> getaddrinfo's answer: the lookup blocks (MicroPython has no other), so it
# runs once, not on every reconnect; a failed connect forgets it.
_resolved = {}


def is_address(host):
    """An IP address literal: nothing to look up."""
    return ":" in host or all(c in "0123456789." for c in host)


def open_socket(host, port, tls, ca=None):
    """A non-blocking TCP (optionally TLS) socket whose connect() may still be in progress."""
    addr = _resolved.get(host)
    if addr is None:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        _resolved[host] = addr
    sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
    try:
        # A small PUBLISH must not wait for a delayed ACK.
        sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
    except OSError:
        pass
    sock.setblocking(False)
    try:
        sock.connect(addr[-1])
    except OSError as err:
        if err.args[0] not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            sock.close()
            raise
    if tls:
        try:
            import mqtt_tls  # only TLS devices pay for this code
        except ImportError:
            sock.close()
            raise OSError("TLS is not available in this firmware build") from None
        sock = mqtt_tls.wrap(sock, host, ca)
    return sock


class Client:
    """QoS 1 publisher with keepalive, retransmit and reconnect with backoff plus jitter.

    settings: config.json's broker object (host, port, tls, ca, username,
    password, keepalive_s, window, ack_timeout_s, backoff_min_s,
    backoff_max_s). will_topic and will_msg: the last will (3.1.2.5).
    rand() gives the jitter in [0, 1); link() says whether the network is
    up; on_up() runs on each CONNACK; on_ack(tag, packet) on each PUBACK
    (packet is None for a tagged publish); reload(tag) gives back (topic,
    payload) of a tagged publish to re-send, or None when it is gone (without
    reload the packet is kept in the heap); subscribe: the one topic read
    (SUBSCRIBE after each CONNACK), each PUBLISH on it going to
    on_message(topic, payload) and acknowledged after; log(line) reports;
    opener opens the socket (tests pass another).
    """

    def __init__(
        self,
        settings,
        client_id,
        *,
        will_topic,
        will_msg,
        rand,
        link,
        on_up,
        on_ack,
        log,
        opener=open_socket,
        reload=None,
        subscribe=None,
        on_message=None,
    ):
        self.settings = settings
        self.client_id = client_id
        self.will = (will_topic, will_msg)
        self.rand = rand
        self.link = link
        self.on_up = on_up
        self.on_ack = on_ack
        self.log = log
        self.opener = opener
        self.reload = reload
        self.topic_in = subscribe  # the one topic read (the device's cmd), or None
        self.on_message = on_message  # on_message(topic, payload) for each PUBLISH on it
        self.sock = None
        self.state = OFFLINE
        self.inflight = {}  # pid -> [_PACKET, _TAG, _SENT]
        self.resend = []  # pids to re-send with DUP once the buffer has room (4.4)
        self.errors = {}
        self.txbuf = _TX
        self.txmv = memoryview(self.txbuf)
        self.txs = self.txe = 0  # bytes waiting for the socket: txbuf[txs:txe]
        self.rxbuf = _RX
        self.rxmv = memoryview(self.rxbuf)
        self.rxn = 0  # bytes received and not yet handled: rxbuf[:rxn]
        self.skip = 0  # bytes of a PUBLISH too large for rxbuf still to read and discard
        self.pid = 0
        self.attempt = 0
        self.next_try = time.ticks_ms()
        self.last_tx = 0
        self.since = 0  # when the connection attempt or the PINGREQ started
        self.pinging = False
        self.looking_up = False  # the next attempt starts with a (blocking) name lookup

    def count(self, name):
        self.errors[name] = self.errors.get(name, 0) + 1

    def can_publish(self):
        return (
            self.state == UP
            and len(self.inflight) < self.settings["window"]
            and not self.resend
            and self.room() >= _TX_ROOM
        )

    def pending(self):
        """Are bytes waiting for the socket?"""
        return self.txe > self.txs

    def room(self):
        """Free bytes at the end of the transmit buffer, after moving what waits to its front."""
        if self.txs:
            left = self.txe - self.txs
            self.txbuf[0:left] = self.txmv[self.txs : self.txe]
            self.txs = 0
            self.txe = left
        return _TX_BYTES - self.txe

    def next_pid(self):
        while True:
            self.pid = self.pid % 65535 + 1  # 2.3.1: non-zero, not in use
            if self.pid not in self.inflight:
                return self.pid

    def publish(self, topic, payload, retain=False, tag=None):
        """Send one QoS 1 PUBLISH now, in one socket write; returns its packet id."""
        self.next_pid()
        start = self.txe
        self.put_publish(topic, payload, self.pid, retain, False)
        packet = None
        if tag is None or self.reload is None:
            packet = bytes(self.txmv[start : self.txe])  # small (status), or no reload given
        self.inflight[self.pid] = [packet, tag, time.ticks_ms()]
        if self.state == UP:
            try:
                self.flush()
            except OSError as err:
                # The link broke under the write: the packet stays in flight, re-sent on reconnect.
                self.drop("mqtt_drop", "socket error %s" % (err.args[0] if err.args else err))
        return self.pid

    def put_publish(self, topic, payload, pid, retain, dup):
        self.room()
        end = codec.publish_into(self.txbuf, self.txe, topic, payload, pid, retain, dup)
        if end < 0:
            raise OSError("PUBLISH larger than the transmit buffer")
        self.txe = end

    def poll(self):
        """Advance the connection without blocking; call every loop turn."""
        now = time.ticks_ms()
        try:
            if self.state == OFFLINE:
                if time.ticks_diff(now, self.next_try) >= 0:
                    self.start(now)
                return
            self.flush()
            self.read()
            self.resend_some()
            if self.state == CONNECTING:
                if time.ticks_diff(now, self.since) > self.settings["ack_timeout_s"] * 1000:
                    self.drop("mqtt_timeout", "no CONNACK")
            else:
                self.keepalive(now)
        except OSError as err:
            self.drop("mqtt_drop", "socket error %s" % (err.args[0] if err.args else err))
        except codec.ProtocolError as err:
            self.drop("mqtt_protocol", str(err))
        except ValueError as err:
            # MicroPython's ssl reports handshake failures (a certificate that does
            # not verify) as ValueError from the socket's read or write.
            self.drop("mqtt_tls", "TLS: %s" % err)

    def start(self, now):
        s = self.settings
        self.rxn = self.skip = 0
        self.txs = self.txe = 0
        self.resend = []
        if not self.link():
            self.retry_later(now)
            return
        host = s["host"]
        if not self.looking_up and not is_address(host) and host not in _resolved:
            # The lookup blocks the loop: give the application one turn to say so on screen.
            self.looking_up = True
            return
        self.looking_up = False
        try:
            self.sock = self.opener(s["host"], s["port"], s["tls"], s["ca"])
        except MemoryError:
            # A TLS context needs a large block; the prompt keeps running, retry later.
            self.count("mqtt_no_memory")
            self.retry_later(now)
            return
        except OSError as err:
            _resolved.pop(host, None)  # look it up again next time (the address may have moved)
            self.count("mqtt_connect_fail")
            self.log("mqtt: connect to %s:%d failed: %s" % (s["host"], s["port"], err))
            self.retry_later(now)
            return
        self.state = CONNECTING
        self.since = now
        # 3.1: CONNECT first; Clean Session 0 so QoS 1 state survives a reconnect
        # (3.1.2.4); the last will (3.1.2.5) tells the site we went away.
        self.send(
            codec.connect(
                self.client_id,
                s["keepalive_s"],
                clean=False,
                user=s["username"],
                password=s["password"],
                will_topic=self.will[0],
                will_msg=self.will[1],
                will_qos=1,
                will_retain=True,
            )
        )

    def retry_later(self, now):
        # Exponential backoff with jitter, so a site's devices do not reconnect in lockstep.
        s = self.settings
        delay = min(s["backoff_min_s"] * 1000 << min(self.attempt, 10), s["backoff_max_s"] * 1000)
        self.attempt += 1
        self.next_try = time.ticks_add(now, int(delay * (0.5 + self.rand())))

    def drop(self, counter, why):
        if self.state == CONNECTING and self.sock is not None:
            _resolved.pop(self.settings["host"], None)  # never connected: look it up again
        self.count(counter)
        self.log("mqtt: connection lost: " + why)
        self.close(False)
        self.retry_later(time.ticks_ms())

    def close(self, clean=True):
        """Close the connection; clean=True sends DISCONNECT (3.14), which cancels the will."""
        if self.sock is not None:
            try:
                if clean and self.state == UP:
                    self.send(codec.DISCONNECT_PACKET)
                    self.flush()
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.state = OFFLINE
        self.txs = self.txe = 0
        self.resend = []
        self.pinging = False

    def keepalive(self, now):
        ka = self.settings["keepalive_s"] * 1000
        if self.pinging:
            # 3.1.2.10: no PINGRESP within a reasonable time -> close the connection.
            if time.ticks_diff(now, self.since) > min(ka, 15000):
                self.drop("mqtt_timeout", "no PINGRESP")
                return
        elif ka and time.ticks_diff(now, self.last_tx) >= ka - 1000:
            self.pinging = True
            self.since = now
            self.send(codec.PINGREQ_PACKET)  # 3.12
        for entry in self.inflight.values():
            if time.ticks_diff(now, entry[_SENT]) > self.settings["ack_timeout_s"] * 1000:
                # The broker owes a PUBACK: reconnect and re-send with DUP (4.4).
                self.drop("mqtt_timeout", "no PUBACK")
            return  # only the oldest matters

    def send(self, packet):
        """Queue a small control packet (CONNECT, PINGREQ, PUBACK, DISCONNECT)."""
        if self.sock is not None:
            self.put(packet)
            if self.state == UP:
                self.flush()

    def put(self, packet):
        if self.room() < len(packet):
            raise OSError("transmit buffer full")
        self.txbuf[self.txe : self.txe + len(packet)] = packet
        self.txe += len(packet)

    def flush(self):
        while self.txe > self.txs:
            n = self.sock.write(self.txmv[self.txs : self.txe])
            if not n:
                return  # the socket is full (or still connecting): later
            self.txs += n
            self.last_tx = time.ticks_ms()
        self.txs = self.txe = 0

    def resend_some(self):
        """4.4: re-send unacknowledged PUBLISH packets with DUP set (3.3.1.1), as room allows."""
        while self.resend and self.state == UP and self.room() >= _TX_ROOM:
            pid = self.resend.pop(0)
            entry = self.inflight.get(pid)
            if entry is None:
                continue
            if entry[_PACKET] is not None:
                start = self.txe
                self.put(entry[_PACKET])
                self.txbuf[start] |= _DUP
            else:
                got = self.reload(entry[_TAG])
                if got is None:
                    del self.inflight[pid]  # dropped from the outbox to make room: nothing to send
                    continue
                self.put_publish(got[0], got[1], pid, False, True)
            entry[_SENT] = time.ticks_ms()
        self.flush()

    def read(self):
        if self.rxn == RX_BYTES:
            self.too_large()
        if self.skip:
            n = self.sock.readinto(self.rxmv[: min(self.skip, RX_BYTES)])
            if n:
                self.skip -= n
                return
        else:
            n = self.sock.readinto(self.rxmv[self.rxn :])
        if n is None:
            return
        if not n:
            raise OSError(errno.ECONNRESET)
        self.rxn += n
        done = 0
        while True:
            got = codec.packet_bounds(self.rxmv[done:], self.rxn - done)
            if got is None:
                break
            self.handle(got[0], got[1], self.rxmv[done + got[2] : done + got[3]])
            done += got[3]
        if done:
            left = self.rxn - done
            self.rxbuf[0:left] = self.rxmv[done : self.rxn]
            self.rxn = left

    def too_large(self):
        """rxbuf is full and holds no whole packet: a PUBLISH larger than RX_BYTES is read
        past and acknowledged (counted), so the broker does not deliver it again at every
        reconnect; anything else that large is a protocol error."""
        got = codec.packet_header(self.rxmv, self.rxn)
        if got is None or got[0] != codec.PUBLISH:
            raise codec.ProtocolError("packet larger than %d bytes" % RX_BYTES)
        body = got[2]
        pos = body + 2 + ((self.rxbuf[body] << 8) | self.rxbuf[body + 1])  # after the topic
        if pos + 2 > RX_BYTES:
            raise codec.ProtocolError("PUBLISH topic larger than %d bytes" % RX_BYTES)
        self.count("mqtt_rx_too_large")
        self.skip = got[3] - self.rxn
        self.rxn = 0
        if (got[1] >> 1) & 3:  # QoS 1 or 2 (3.3.1.2): its packet id follows the topic
            self.send(codec.puback((self.rxbuf[pos] << 8) | self.rxbuf[pos + 1]))

    def handle(self, kind, flags, body):
        if kind == codec.PUBACK:  # 3.4
            entry = self.inflight.pop((body[0] << 8) | body[1], None)
            if entry is not None:
                self.on_ack(entry[_TAG], entry[_PACKET])
        elif kind == codec.CONNACK:  # 3.2
            if len(body) != 2 or body[1]:
                # 3.2.2.3 return codes: 1 protocol version, 2 identifier rejected,
                # 3 server unavailable, 4 bad user name or password, 5 not authorized.
                self.count("mqtt_refused")
                raise OSError("CONNACK refused, return code %d" % body[-1])
            self.state = UP
            self.attempt = 0
            self.log("mqtt: connected to %s:%d" % (self.settings["host"], self.settings["port"]))
            if self.topic_in is not None:
                # 3.8, every session; first, while the transmit buffer is empty.
                self.send(codec.subscribe(self.next_pid(), self.topic_in))
            # 4.4: re-send unacknowledged PUBLISH packets, DUP set (3.3.1.1), in order.
            self.resend = sorted(self.inflight, key=lambda pid: self.inflight[pid][_SENT])
            if self.resend:
                self.count("mqtt_retransmit")
                self.resend_some()
            self.on_up()
        elif kind == codec.PINGRESP:  # 3.13
            self.pinging = False
        elif kind == codec.SUBACK:  # 3.9: 0x80 is a refusal (the broker's ACL)
            if body[-1:] == b"\x80":
                self.count("mqtt_sub_refused")
        elif kind == codec.PUBLISH:
            topic, payload, qos, pid = codec.parse_publish(flags, body)
            if self.on_message is not None and topic == self.topic_in.encode():
                self.on_message(topic, payload)
            else:
                self.count("mqtt_unexpected_publish")
            if qos:  # 4.3.2: acknowledged once handled, so a power cut means redelivery
                self.send(codec.puback(pid))
        else:
            raise codec.ProtocolError("unexpected packet type %d" % kind)
