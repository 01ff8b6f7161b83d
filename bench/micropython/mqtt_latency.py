# ruff: noqa: UP031  (MicroPython code)
"""Runs inside micropython: publish -> PUBACK latency and rate of the device client.

micropython mqtt_latency.py HOST PORT N WINDOW -> one JSON line of results.
"""

import gc
import json
import select
import sys
import time

gc.collect()
free_before = gc.mem_free()
import mqtt  # noqa: E402

host, port, n, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
settings = {
    "host": host,
    "port": port,
    "tls": False,
    "ca": None,
    "username": None,
    "password": None,
    "keepalive_s": 60,
    "window": window,
    "ack_timeout_s": 10,
    "backoff_min_s": 1,
    "backoff_max_s": 2,
}
acked = []
sent_at = {}


def on_ack(tag, packet):
    acked.append(time.ticks_diff(time.ticks_us(), sent_at[tag]))


client = mqtt.Client(
    settings,
    "bench-dev",
    "bench/status",
    '{"online": false}',
    lambda: 0.5,
    lambda: True,
    lambda: None,
    on_ack,
    lambda m: None,
)
gc.collect()
free_client = gc.mem_free()
poller = select.poll()
deadline = time.ticks_add(time.ticks_ms(), 10000)
while client.state != mqtt.UP:
    client.poll()
    time.sleep_ms(1)
    if time.ticks_diff(deadline, time.ticks_ms()) < 0:
        raise SystemExit("no CONNACK")
poller.register(client.sock, select.POLLIN)
payload = json.dumps(
    {
        "v": 1,
        "id": "nps-a1b2c3:42",
        "device": "nps-a1b2c3",
        "site": "store-12",
        "seq": 42,
        "boot": 7,
        "up_ms": 360512,
        "ts": 1795000000.5,
        "fw": "1.0.0",
        "type": "feedback",
        "outcome": "answered",
        "score": 9,
        "prompt": "nps",
        "trigger": {"kind": "cycle_complete", "ref": "tx-991"},
        "reason": None,
        "answer_ms": 2300,
        "ctx": {"rssi": -61, "battery_mv": 3910},
    }
).encode()
gc.collect()
low = gc.mem_free()
started = time.ticks_us()
i = 0
while len(acked) < n:
    while i < n and client.can_publish():
        sent_at[i] = time.ticks_us()
        client.publish("bench/dev/feedback", payload, tag=i)
        i += 1
    poller.poll(100)
    client.poll()
    free = gc.mem_free()
    if free < low:
        low = free
elapsed_us = time.ticks_diff(time.ticks_us(), started)
client.close()
acked.sort()
print(
    json.dumps(
        {
            "n": n,
            "window": window,
            "seconds": elapsed_us / 1e6,
            "rate": n * 1e6 / elapsed_us,
            "median_ms": acked[n // 2] / 1000,
            "p95_ms": acked[int(n * 0.95)] / 1000,
            "client_heap_bytes": free_before - free_client,
            "heap_used_peak_bytes": free_before - low,
            "payload_bytes": len(payload),
        }
    )
)
