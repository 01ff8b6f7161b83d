# ruff: noqa: UP031  (MicroPython code)
"""The device MQTT client (firmware/device/mqtt.py) under micropython: publish -> PUBACK.

micropython mqtt_latency.py HOST PORT N WINDOW -> one JSON line. With WINDOW 1 every
publish waits for its PUBACK (latency); with a wider window it measures the rate.
"""

import array
import gc
import json
import select
import sys
import time

host, port, n, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# Latencies only with window 1; room for them is taken before measuring the heap.
lat = array.array("I", bytearray(4 * (n if window == 1 else 1)))
count = [0]
sent_at = [0] * window
gc.collect()
free_before = gc.mem_free()
import mqtt  # noqa: E402

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


def on_ack(tag, packet):
    if window == 1:
        lat[count[0]] = time.ticks_diff(time.ticks_us(), sent_at[tag])
    count[0] += 1


client = mqtt.Client(
    settings,
    "bench-dev",
    will_topic="bench/status",
    will_msg='{"online": false}',
    rand=lambda: 0.5,
    link=lambda: True,
    on_up=lambda: None,
    on_ack=on_ack,
    log=lambda m: None,
)
gc.collect()
free_client = gc.mem_free()
deadline = time.ticks_add(time.ticks_ms(), 10000)
while client.state != mqtt.UP:
    client.poll()
    time.sleep_ms(1)
    if time.ticks_diff(deadline, time.ticks_ms()) < 0:
        raise SystemExit("no CONNACK")
gc.collect()
free_connected = gc.mem_free()
poller = select.poll()
poller.register(client.sock, select.POLLIN)
payload = b'{"v": 1, "pad": "' + b"x" * 330 + b'"}'
topic = "bench/dev/feedback"
live = 0
i = 0
started = time.ticks_us()
while count[0] < n:
    while i < n and client.can_publish():
        slot = i % window
        sent_at[slot] = time.ticks_us()
        client.publish(topic, payload, tag=slot)
        i += 1
    poller.poll(100)
    client.poll()
    if i % 97 == 0 and client.inflight:
        gc.collect()  # what is really held with packets in flight, not garbage
        live = max(live, free_before - gc.mem_free())
elapsed = time.ticks_diff(time.ticks_us(), started)
client.close()
lat = sorted(lat)
print(
    json.dumps(
        {
            "n": n,
            "window": window,
            "seconds": elapsed / 1e6,
            "rate": n * 1e6 / elapsed,
            "median_ms": lat[len(lat) // 2] / 1000,
            "p95_ms": lat[int(len(lat) * 0.95)] / 1000,
            "client_heap_bytes": free_before - free_client,
            "connected_heap_bytes": free_before - free_connected,
            "live_heap_in_flight_bytes": live,
        }
    )
)
