"""Properties of the device's MQTT packet code (firmware/device/mqtt_codec.py), under CPython
with hypothesis; the same module's byte-exact cases run inside micropython (unit_codec.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

_PATH = Path(__file__).resolve().parents[2] / "firmware" / "device" / "mqtt_codec.py"
_SPEC = importlib.util.spec_from_file_location("device_mqtt_codec", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
codec = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(codec)

topics = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(topics, st.binary(max_size=3000), st.integers(0, 1), st.integers(1, 65535), st.booleans())
def test_publish_round_trips(topic: str, payload: bytes, qos: int, pid: int, retain: bool) -> None:
    packet = codec.publish(topic, payload, qos=qos, retain=retain, pid=pid)
    kind, flags, body, used = codec.take_packet(packet)
    assert (kind, used) == (codec.PUBLISH, len(packet))
    assert flags & 1 == retain and (flags >> 1) & 3 == qos
    got_topic, got_payload, got_qos, got_pid = codec.parse_publish(flags, body)
    assert got_topic == topic.encode() and got_payload == payload and got_qos == qos
    assert got_pid == (pid if qos else 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=8), st.data())
def test_a_stream_split_anywhere_yields_the_same_packets(bodies: list[bytes], data) -> None:
    stream = b"".join(codec._packet(0x30, b) for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    got: list[bytes] = []
    buf = b""
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buf += stream[lo:hi]
        while (packet := codec.take_packet(buf)) is not None:
            got.append(packet[2])
            buf = buf[packet[3] :]
    assert got == bodies and buf == b""


@given(st.integers(0, 268435455))
def test_remaining_length_is_minimal_and_decodes(n: int) -> None:
    head = bytes(codec._varlen(n))
    assert len(head) == (1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4)
    assert codec.take_packet(b"\x30" + head) is None or n == 0  # body still missing
