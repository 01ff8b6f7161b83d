# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""MQTT 3.1.1 packets byte for byte, and the client against a fake socket."""

import mqtt
import mqtt_codec as codec


def test_connect_with_will_and_credentials():
    p = codec.connect(
        "dev1",
        60,
        clean=False,
        user="u",
        password="pw",
        will_topic="a/s",
        will_msg=b'{"online": false}',
        will_qos=1,
        will_retain=True,
    )
    # 3.1.2: protocol name, level 4, flags user|pass|will retain|will qos 1|will.
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    body = (
        b"\x00\x04MQTT\x04"
        + bytes((flags, 0, 60))
        + b"\x00\x04dev1"
        + b"\x00\x03a/s"
        + b'\x00\x11{"online": false}'
        + b"\x00\x01u"
        + b"\x00\x02pw"
    )
    assert p == bytes((0x10, len(body))) + body


def test_publish_qos1_retain_dup_and_pid():
    p = codec.publish("t/x", b"hi", qos=1, retain=True, pid=0x1234, dup=True)
    assert p == b"\x3b\x09\x00\x03t/x\x12\x34hi"
    assert codec.publish("t", "é", qos=0) == b"\x30\x05\x00\x01t\xc3\xa9"


def test_remaining_length_boundaries():
    for n, head in (
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
    ):
        assert codec._varlen(n) == head, n
        # The header alone tells that the rest of a big packet has not arrived yet.
        assert codec.take_packet(b"\x30" + head + b"x" * min(n - 1, 100)) is None or n == 0
    for n in (0, 5, 127, 128, 200):
        packet = codec._packet(0x30, b"x" * n)
        assert codec.take_packet(packet) == (3, 0, b"x" * n, len(packet))
        assert codec.take_packet(packet[:-1] if n else packet[:1]) is None


def test_take_packet_splits_a_stream():
    stream = codec.puback(7) + b"\xd0\x00" + codec.puback(8)[:3]
    kind, flags, body, used = codec.take_packet(stream)
    assert (kind, body) == (codec.PUBACK, b"\x00\x07")
    kind, _, body, used2 = codec.take_packet(stream[used:])
    assert kind == codec.PINGRESP and body == b""
    assert codec.take_packet(stream[used + used2 :]) is None


def test_parse_publish():
    topic, payload, qos, pid = codec.parse_publish(0x02, b"\x00\x01c\x00\x09{}")
    assert (topic, payload, qos, pid) == (b"c", b"{}", 1, 9)


class FakeSocket:
    """Accepts every write whole and hands back scripted reads."""

    def __init__(self):
        self.writes = []
        self.inbox = b""
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def read(self, n):
        if not self.inbox:
            return None
        data, self.inbox = self.inbox[:n], self.inbox[n:]
        return data

    def readinto(self, buf):
        data = self.read(len(buf))
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)

    def close(self):
        self.closed = True


SETTINGS = {
    "host": "10.0.0.1",  # an address: no lookup turn (unit_screens tests that)
    "port": 1,
    "tls": False,
    "ca": None,
    "username": None,
    "password": None,
    "keepalive_s": 60,
    "window": 2,
    "ack_timeout_s": 10,
    "backoff_min_s": 0,
    "backoff_max_s": 0,
}


def client():
    socks = []
    acks = []

    def opener(host, port, tls, ca):
        socks.append(FakeSocket())
        return socks[-1]

    c = mqtt.Client(
        SETTINGS,
        "dev1",
        will_topic="a/s",
        will_msg="{}",
        rand=lambda: 0.5,
        link=lambda: True,
        on_up=lambda: None,
        on_ack=lambda tag, packet: acks.append(tag),
        log=lambda msg: None,
        opener=opener,
    )
    return c, socks, acks


def test_client_connects_publishes_in_one_write_and_acks():
    c, socks, acks = client()
    c.poll()  # opens the socket, queues CONNECT
    c.poll()  # writes CONNECT
    sock = socks[0]
    assert sock.writes[0][0] == 0x10
    sock.inbox = b"\x20\x02\x00\x00"  # CONNACK accepted
    c.poll()
    assert c.state == mqtt.UP
    pid = c.publish("t", b"payload", tag=("f", 1))
    assert sock.writes[-1] == codec.publish("t", b"payload", qos=1, pid=pid)  # one write
    assert not c.can_publish() or len(c.inflight) == 1
    sock.inbox = codec.puback(pid)
    c.poll()
    assert acks == [("f", 1)] and not c.inflight


def test_window_limits_in_flight():
    c, socks, _ = client()
    c.poll()
    c.poll()
    socks[0].inbox = b"\x20\x02\x00\x00"
    c.poll()
    c.publish("t", b"1")
    c.publish("t", b"2")
    assert not c.can_publish()


def test_reconnect_resends_unacked_with_dup():
    c, socks, acks = client()
    c.poll()
    c.poll()
    socks[0].inbox = b"\x20\x02\x00\x00"
    c.poll()
    pid = c.publish("t", b"x", tag=("f", 9))
    socks[0].inbox = b""
    c.drop("mqtt_drop", "test")  # the link broke before the PUBACK
    assert c.state == mqtt.OFFLINE and socks[0].closed
    c.poll()
    c.poll()
    socks[1].inbox = b"\x20\x02\x00\x00"
    c.poll()
    resent = socks[1].writes[-1]
    assert resent == codec.publish("t", b"x", qos=1, pid=pid, dup=True)
    socks[1].inbox = codec.puback(pid)
    c.poll()
    assert acks == [("f", 9)]
    assert c.errors["mqtt_retransmit"] == 1


def test_refused_connack_drops_and_counts():
    c, socks, _ = client()
    c.poll()
    c.poll()
    socks[0].inbox = b"\x20\x02\x00\x05"  # not authorized
    c.poll()
    assert c.state == mqtt.OFFLINE and c.errors["mqtt_refused"] == 1


def connected(settings=None):
    c, socks, acks = client()
    if settings:
        c.settings = dict(SETTINGS, **settings)
    c.poll()
    c.poll()
    socks[0].inbox = b"\x20\x02\x00\x00"
    c.poll()
    assert c.state == mqtt.UP
    return c, socks, acks


def test_keepalive_sends_pingreq_then_drops_without_pingresp():
    import time

    c, socks, _ = connected({"keepalive_s": 5})
    c.last_tx = time.ticks_add(time.ticks_ms(), -5000)  # nothing sent for a keepalive
    c.poll()
    assert socks[0].writes[-1] == codec.PINGREQ_PACKET and c.pinging
    socks[0].inbox = b"\xd0\x00"  # PINGRESP
    c.poll()
    assert not c.pinging
    c.last_tx = time.ticks_add(time.ticks_ms(), -5000)
    c.poll()
    c.since = time.ticks_add(time.ticks_ms(), -6000)  # and no answer this time
    c.poll()
    assert c.state == mqtt.OFFLINE and c.errors["mqtt_timeout"] == 1


def test_missing_puback_reconnects_and_resends():
    import time

    c, socks, acks = connected()
    pid = c.publish("t", b"x", tag=("f", 1))
    c.inflight[pid][2] = time.ticks_add(time.ticks_ms(), -11000)  # ack_timeout_s is 10
    c.poll()
    assert c.state == mqtt.OFFLINE and c.errors["mqtt_timeout"] == 1 and pid in c.inflight


def test_backoff_grows_with_jitter_and_caps():
    import time

    delays = []
    for r in (0.0, 0.999):
        c, _, _ = client()
        c.settings = dict(SETTINGS, backoff_min_s=1, backoff_max_s=8)
        c.rand = lambda r=r: r
        got = []
        for _ in range(6):
            now = time.ticks_ms()
            c.retry_later(now)
            got.append(time.ticks_diff(c.next_try, now))
        delays.append(got)
    low, high = delays
    assert low == [500, 1000, 2000, 4000, 4000, 4000], low  # x0.5 jitter, capped at 8 s
    assert high[0] >= 1498 and high[-1] <= 12000 and high[-1] >= 11990, high


def test_a_publish_larger_than_the_receive_buffer_is_skipped_and_acked():
    got = []
    c, socks, _ = connected()
    c.topic_in = "d/cmd"
    c.on_message = lambda topic, payload: got.append(payload)
    sock = socks[0]
    big = codec.publish("d/cmd", b"x" * (3 * mqtt.RX_BYTES), qos=1, pid=77)
    small = codec.publish("d/cmd", b"ok", qos=1, pid=78)
    sock.inbox = big + small
    for _ in range(10):
        c.poll()
    assert c.state == mqtt.UP  # not dropped: the broker would deliver it again
    assert codec.puback(77) in sock.writes and codec.puback(78) in sock.writes
    assert got == [b"ok"] and c.errors["mqtt_rx_too_large"] == 1


def test_another_packet_larger_than_the_receive_buffer_is_a_protocol_error():
    c, socks, _ = connected()
    socks[0].inbox = codec._packet(0x90, b"\x00\x01" + b"\x00" * (2 * mqtt.RX_BYTES))  # SUBACK
    c.poll()  # fills the receive buffer
    c.poll()  # no whole packet in it, and not a PUBLISH
    assert c.state == mqtt.OFFLINE and c.errors["mqtt_protocol"] == 1
