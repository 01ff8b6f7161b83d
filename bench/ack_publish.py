"""The gateway's acks to devices: paho's CPU per publish at QoS 1 and QoS 0, and a
round of QoS 0 acks queued as one packet (`BufferedClient.publish_all`, as the gateway
sends them).

    .venv/bin/python -m bench.ack_publish                 # about 30 seconds
    .venv/bin/python -m bench.ack_publish --messages 50000 --reps 5 --round 200

A Mosquitto of its own (the shipped config) on a free port; one client set up as the
gateway's (the gateway's `BufferedClient`, its network thread, paho's default of 20
QoS 1 messages in flight) publishes `{"ack":[[5,8]]}` to `--devices` devices' `cmd`
topics in turn, as the acks thread does in a fleet where a round holds one event per
device, until paho holds nothing unsent or unacknowledged. The three ways alternate rep
after rep in one run: paho's `publish` at QoS 1, at QoS 0, and `publish_all` of
`--round` messages at a time. Reported: this process's CPU (user + system) per
message, the rate, each rep's value, and the ratios to QoS 0 by `publish`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from paho.mqtt.enums import CallbackAPIVersion

from gateway.mqtt_socket import BufferedClient
from nps_edge.broker import start_mosquitto

ACK = b'{"ack":[[5,8]]}'


def one_rep(
    address: str, way: str, messages: int, devices: int, round_: int
) -> tuple[float, float]:
    """(CPU us per message, messages per second) of one client's run: `way` is "qos1",
    "qos0" (paho's `publish`) or "round" (`publish_all`, `round_` messages a call)."""
    host, port = address.rsplit(":", 1)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"bench-acks-{way}")
    rounds = -(-messages // round_)
    written = threading.Semaphore(0)  # a release per round's packet written (paho's on_publish)
    if way == "round":  # the others wait on their last message's info (no callback each)
        client.on_publish = lambda *args: written.release()
    client.connect(host, int(port))
    client.loop_start()
    topics = [f"nps/v1/nps-{n % devices:06x}/cmd" for n in range(messages)]
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        if way == "round":
            for start in range(0, messages, round_):
                assert client.publish_all([(t, ACK) for t in topics[start : start + round_]])
            for _ in range(rounds):  # every round written, not only one of the last
                assert written.acquire(timeout=60), "a round not written in 60 s"
        else:
            qos = 1 if way == "qos1" else 0
            last = None
            for topic in topics:
                last = client.publish(topic, ACK, qos=qos)
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
    parser.add_argument("--reps", type=int, default=3, help="reps of each way, alternated")
    parser.add_argument("--round", type=int, default=200, help="messages per publish_all call")
    args = parser.parse_args()
    ways = ("qos1", "qos0", "round")
    runs: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory(prefix="nps-bench-acks-") as work:
        broker = start_mosquitto(Path(work) / "broker")
        try:
            for rep in range(args.reps):
                for way in ways:
                    runs[way].append(
                        one_rep(broker.address, way, args.messages, args.devices, args.round)
                    )
                    us, rate = runs[way][-1]
                    print(f"rep {rep + 1} {way}: {us:.1f} us CPU per message, {rate:,.0f}/s")
        finally:
            broker.stop()
    median = {way: statistics.median(us for us, _ in r) for way, r in runs.items()}
    print(
        f"median CPU per message: QoS 1 {median['qos1']:.1f} us, QoS 0 {median['qos0']:.1f} us,"
        f" QoS 0 in rounds of {args.round} {median['round']:.1f} us;"
        f" QoS 1 / QoS 0 = {median['qos1'] / median['qos0']:.2f},"
        f" rounds / QoS 0 = {median['round'] / median['qos0']:.2f}"
    )


if __name__ == "__main__":
    main()
