# ruff: noqa: UP031  (MicroPython code)
"""The reference: a blocking QoS 1 publisher that writes each packet in pieces, as
umqtt.simple does (fixed header, topic, packet id, payload: four socket writes), without
TCP_NODELAY. Written here for the comparison; not part of the firmware.

micropython naive_client.py HOST PORT N -> one JSON line.
"""

import gc
import json
import socket
import sys
import time

gc.collect()
free_before = gc.mem_free()
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def send_str(sock, s):
    sock.write(bytes((len(s) >> 8, len(s) & 0xFF)))
    sock.write(s)


sock = socket.socket()
sock.connect(socket.getaddrinfo(host, port)[0][-1])
cid = b"bench-naive"
sock.write(bytes((0x10, 12 + len(cid))) + b"\x00\x04MQTT\x04\x02\x00\x3c")
send_str(sock, cid)
assert sock.read(4) == b"\x20\x02\x00\x00"
topic = b"bench/naive/feedback"
payload = b'{"v": 1, "pad": "' + b"x" * 330 + b'"}'
gc.collect()
free_client = gc.mem_free()
lat = []
started = time.ticks_us()
for i in range(n):
    pid = i % 65535 + 1
    t = time.ticks_us()
    size = 2 + len(topic) + 2 + len(payload)
    sock.write(bytes((0x32, (size & 0x7F) | 0x80, size >> 7)))
    send_str(sock, topic)
    sock.write(bytes((pid >> 8, pid & 0xFF)))
    sock.write(payload)
    ack = sock.read(4)
    assert ack == bytes((0x40, 2, pid >> 8, pid & 0xFF)), ack
    lat.append(time.ticks_diff(time.ticks_us(), t))
elapsed = time.ticks_diff(time.ticks_us(), started)
lat.sort()
print(
    json.dumps(
        {
            "n": n,
            "seconds": elapsed / 1e6,
            "rate": n * 1e6 / elapsed,
            "median_ms": lat[n // 2] / 1000,
            "p95_ms": lat[int(n * 0.95)] / 1000,
            "client_heap_bytes": free_before - free_client,
        }
    )
)
