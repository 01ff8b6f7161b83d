"""The gateway's acks to devices: paho's CPU per publish at QoS 1 against QoS 0.

    .venv/bin/python -m bench.ack_publish                 # about 20 seconds
    .venv/bin/python -m bench.ack_publish --messages 50000 --reps 5

A Mosquitto of its own (the shipped config) on a free port; one paho client set up as
the gateway's (its network thread, paho's default of 20 QoS 1 messages in flight)
publishes `{"ack":[[5,8]]}` to `--devices` devices' `cmd` topics in turn, as the acks
thread does in a fleet where a round holds one event per device, until paho holds
nothing unsent or unacknowledged. QoS 1 and QoS 0 alternate rep after rep in one run;
reported: this process's CPU (user + system) per publish, the rate, each rep's value,
and the ratio QoS 1 / QoS 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import start_mosquitto

ACK = b'{"ack":[[5,8]]}'


def one_rep(address: str, qos: int, messages: int, devices: int) -> tuple[float, float]:
    """(CPU us per publish, publishes per second) of one client's run."""
    host, port = address.rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-acks-{qos}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        last = None
        for n in range(messages):
            last = client.publish(f"nps/v1/nps-{n % devices:06x}/cmd", ACK, qos=qos)
        assert last is not None
        # QoS 1: the last PUBACK; paho sends its window in order and the broker answers
        # in order, so every earlier one is in. QoS 0: the last written to the socket.
        last.wait_for_publish(timeout=60)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        client.loop_stop()
        client.disconnect()
    return cpu / messages * 1e6, messages / wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000, help="publishes per rep")
    parser.add_argument("--devices", type=int, default=10_000, help="distinct cmd topics")
    parser.add_argument("--reps", type=int, default=3, help="reps of each QoS, alternated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nps-bench-acks-") as work:
        broker = start_mosquitto(Path(work) / "broker")
        try:
            runs: dict[int, list[tuple[float, float]]] = {1: [], 0: []}
            for rep in range(args.reps):
                for qos in (1, 0):
                    runs[qos].append(one_rep(broker.address, qos, args.messages, args.devices))
                    us, rate = runs[qos][-1]
                    print(f"rep {rep + 1} QoS {qos}: {us:.1f} us CPU per publish, {rate:,.0f}/s")
        finally:
            broker.stop()
    median = {q: statistics.median(us for us, _ in r) for q, r in runs.items()}
    print(
        f"median CPU per publish: QoS 1 {median[1]:.1f} us, QoS 0 {median[0]:.1f} us;"
        f" QoS 1 / QoS 0 = {median[1] / median[0]:.2f}"
    )


if __name__ == "__main__":
    main()
