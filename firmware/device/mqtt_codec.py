"""MQTT 3.1.1 packet encoding and decoding: pure, no sockets.

Section numbers refer to the OASIS MQTT Version 3.1.1 specification. Every
encoder returns one complete packet as one bytes object, so the client can
hand it to the socket in a single write (split writes plus Nagle's algorithm
cost umqtt 44 ms per PUBACK; see docs/firmware.md).
"""

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

# 3.2.2.3: CONNACK return codes 1..5: protocol version, identifier rejected,
# server unavailable, bad user name or password, not authorized.


class ProtocolError(ValueError):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet."""


def _varlen(n):
    # 2.2.3: Remaining Length, 7 bits per byte, continuation bit 0x80, at most 4 bytes.
    if n > 268435455:
        raise ValueError("packet too large")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return out


def _str(s):
    # 1.5.3: UTF-8 string prefixed by a two-byte big-endian length.
    if isinstance(s, str):
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


def _packet(first, body):
    return bytes((first,)) + _varlen(len(body)) + body


def connect(
    client_id,
    keepalive_s,
    clean=True,
    user=None,
    password=None,
    will_topic=None,
    will_msg=None,
    will_qos=1,
    will_retain=True,
):
    """3.1: CONNECT with protocol level 4, optional last will and credentials."""
    flags = 0x02 if clean else 0  # 3.1.2.4 Clean Session
    payload = _str(client_id)  # 3.1.3.1
    if will_topic is not None:
        # 3.1.2.5-3.1.2.7: Will Flag, Will QoS, Will Retain.
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _str(will_topic) + _str(will_msg)
    if user is not None:
        flags |= 0x80  # 3.1.2.8
        payload += _str(user)
        if password is not None:
            flags |= 0x40  # 3.1.2.9
            payload += _str(password)
    # 3.1.2.1-3.1.2.3 protocol name "MQTT", level 4; 3.1.2.10 keep alive in seconds.
    head = b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _packet(CONNECT << 4, head + payload)


def publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    """3.3: PUBLISH; the packet identifier is present only for QoS > 0 (3.3.2.2)."""
    first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    if isinstance(payload, str):
        payload = payload.encode()
    body = _str(topic)
    if qos:
        body += bytes((pid >> 8, pid & 0xFF))
    return _packet(first, body + payload)


def publish_into(buf, pos, topic, payload, pid, retain=False, dup=False):
    """3.3: a QoS 1 PUBLISH written into bytearray buf at pos; its end, or -1 if it does not fit.

    The client's transmit buffer is allocated once: no packet-sized bytes object per publish.
    """
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(payload, str):
        payload = payload.encode()  # small ones only (status): records come as memoryviews
    length = 2 + len(topic) + 2 + len(payload)
    n = 1 + (1 if length < 128 else 2 if length < 16384 else 3) + length
    if pos + n > len(buf):
        return -1
    buf[pos] = (PUBLISH << 4) | 0x02 | (1 if retain else 0) | (0x08 if dup else 0)
    pos += 1
    while True:  # 2.2.3 Remaining Length
        b = length & 0x7F
        length >>= 7
        buf[pos] = b | 0x80 if length else b
        pos += 1
        if not length:
            break
    buf[pos] = len(topic) >> 8
    buf[pos + 1] = len(topic) & 0xFF
    pos += 2
    buf[pos : pos + len(topic)] = topic
    pos += len(topic)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    pos += 2
    buf[pos : pos + len(payload)] = payload
    return pos + len(payload)


def puback(pid):
    return bytes((PUBACK << 4, 2, pid >> 8, pid & 0xFF))  # 3.4


def subscribe(pid, topic, qos=1):
    # 3.8: fixed header flags 0010 (3.8.1), packet id, one topic filter and its QoS.
    return _packet(
        (SUBSCRIBE << 4) | 2, bytes((pid >> 8, pid & 0xFF)) + _str(topic) + bytes((qos,))
    )


PINGREQ_PACKET = b"\xc0\x00"  # 3.12
DISCONNECT_PACKET = b"\xe0\x00"  # 3.14


def packet_bounds(buf, n):
    """Where the first whole packet of buf[:n] lies: (packet_type, flags, body start, end), or None.

    None when buf holds only part of a packet (2.2.3: the length field is itself variable).
    """
    got = packet_header(buf, n)
    if got is None or got[3] > n:
        return None
    return got


def packet_header(buf, n):
    """(packet_type, flags, body start, end) of the packet starting buf[:n], whole or not;
    None while its fixed header is incomplete."""
    if n < 2:
        return None
    length = 0
    shift = 0
    i = 1
    while True:
        if i >= n:
            return None
        b = buf[i]
        length |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
        if shift > 21:
            raise ProtocolError("remaining length longer than 4 bytes")
    return buf[0] >> 4, buf[0] & 0x0F, i, i + length


def take_packet(buf):
    """Split one whole packet off the front of buf: (packet_type, flags, body, consumed) or None."""
    got = packet_bounds(buf, len(buf))
    if got is None:
        return None
    return got[0], got[1], bytes(buf[got[2] : got[3]]), got[3]


def parse_publish(flags, body):
    """3.3: returns (topic, payload, qos, pid) of an incoming PUBLISH."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")  # 3.3.1.2
    if len(body) < 2:
        raise ProtocolError("PUBLISH without topic")
    tlen = (body[0] << 8) | body[1]
    topic = bytes(body[2 : 2 + tlen])
    pos = 2 + tlen
    pid = 0
    if qos:
        pid = (body[pos] << 8) | body[pos + 1]
        pos += 2
    return topic, bytes(body[pos:]), qos, pid
