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
_READ_BYTES = const(256)
# An in-flight entry is a list [packet, tag, ticks when sent]: a class would cost
# heap the 64 KB unix-port simulator does not have (docs/firmware.md).
_PACKET = const(0)
_TAG = const(1)
_SENT = const(2)


def open_socket(host, port, tls, ca=None):
    """A non-blocking TCP (optionally TLS) socket whose connect() may still be in progress."""
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
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
    up; on_up() runs on each CONNACK; on_ack(tag, packet) on each PUBACK;
    log(line) reports; opener opens the socket (tests pass another).
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
        self.topic_in = subscribe  # the one topic read (the device's cmd), or None
        self.on_message = on_message  # on_message(topic, payload) for each PUBLISH on it
        self.sock = None
        self.state = OFFLINE
        self.inflight = {}  # pid -> [_PACKET, _TAG, _SENT], in sending order
        self.errors = {}
        self.tx = b""
        self.rx = b""
        self.pid = 0
        self.attempt = 0
        self.next_try = time.ticks_ms()
        self.last_tx = 0
        self.since = 0  # when the connection attempt or the PINGREQ started
        self.pinging = False

    def count(self, name):
        self.errors[name] = self.errors.get(name, 0) + 1

    def can_publish(self):
        return self.state == UP and len(self.inflight) < self.settings["window"]

    def next_pid(self):
        while True:
            self.pid = self.pid % 65535 + 1  # 2.3.1: non-zero, not in use
            if self.pid not in self.inflight:
                return self.pid

    def publish(self, topic, payload, retain=False, tag=None):
        """Send one QoS 1 PUBLISH now, in one socket write; returns its packet id."""
        self.next_pid()
        packet = codec.publish(topic, payload, qos=1, retain=retain, pid=self.pid)
        self.inflight[self.pid] = [packet, tag, time.ticks_ms()]
        self.send(packet)
        return self.pid

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
        self.rx = b""
        self.tx = b""
        if not self.link():
            self.retry_later(now)
            return
        try:
            self.sock = self.opener(s["host"], s["port"], s["tls"], s["ca"])
        except MemoryError:
            # A TLS context needs a large block; the prompt keeps running, retry later.
            self.count("mqtt_no_memory")
            self.retry_later(now)
            return
        except OSError as err:
            self.count("mqtt_connect_fail")
            self.log("mqtt: connect to %s:%d failed: %s" % (s["host"], s["port"], err))
            self.retry_later(now)
            return
        self.state = CONNECTING
        self.since = now
        # 3.1: CONNECT first; Clean Session 0 so QoS 1 state survives a reconnect
        # (3.1.2.4); the last will (3.1.2.5) tells the site we went away.
        self.tx = codec.connect(
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

    def retry_later(self, now):
        # Exponential backoff with jitter, so a site's devices do not reconnect in lockstep.
        s = self.settings
        delay = min(s["backoff_min_s"] * 1000 << min(self.attempt, 10), s["backoff_max_s"] * 1000)
        self.attempt += 1
        self.next_try = time.ticks_add(now, int(delay * (0.5 + self.rand())))

    def drop(self, counter, why):
        self.count(counter)
        self.log("mqtt: connection lost: " + why)
        self.close(False)
        self.retry_later(time.ticks_ms())

    def close(self, clean=True):
        """Close the connection; clean=True sends DISCONNECT (3.14), which cancels the will."""
        if self.sock is not None:
            try:
                if clean and self.state == UP:
                    self.sock.write(self.tx + codec.DISCONNECT_PACKET)
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.state = OFFLINE
        self.tx = b""
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
        if self.sock is not None:
            self.tx = self.tx + packet if self.tx else packet
            if self.state == UP:
                self.flush()

    def flush(self):
        while self.tx:
            n = self.sock.write(self.tx)
            if not n:
                return  # the socket is full (or still connecting): later
            self.tx = self.tx[n:]
            self.last_tx = time.ticks_ms()

    def read(self):
        data = self.sock.read(_READ_BYTES)
        if data is None:
            return
        if not data:
            raise OSError(errno.ECONNRESET)
        self.rx = self.rx + data if self.rx else data
        while True:
            got = codec.take_packet(self.rx)
            if got is None:
                return
            self.rx = self.rx[got[3] :]
            self.handle(got[0], got[1], got[2])

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
            # 4.4: re-send unacknowledged PUBLISH packets, DUP set (3.3.1.1), in order.
            resend = b""
            now = time.ticks_ms()
            for entry in self.inflight.values():
                entry[_PACKET] = bytes((entry[_PACKET][0] | _DUP,)) + entry[_PACKET][1:]
                entry[_SENT] = now
                resend += entry[_PACKET]
            if resend:
                self.count("mqtt_retransmit")
                self.send(resend)
            if self.topic_in is not None:
                self.send(codec.subscribe(self.next_pid(), self.topic_in))  # 3.8, every session
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
