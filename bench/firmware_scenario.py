"""A month of history for a fleet through the real firmware: `python -m bench.firmware_scenario`.

Generates one scenario file per device (docs/firmware.md format), runs
`nps-edge sim --scenario` against a fresh Mosquitto and reports the wall
time, the events per second and the CPU time, next to a bare paho publisher
(CPython, QoS 1, 20 in flight) sending the same number of events in the same
run as the reference.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.sim.plans import device_id
from nps_edge.broker import start_mosquitto

DAY = 86400.0
START = 1790000000.0


def month_of_steps(rng: random.Random, events: int, days: int = 30) -> list[dict[str, Any]]:
    """About `events` events spread over `days`: prompts, telemetry every 4 h, one upgrade."""
    steps: list[dict[str, Any]] = []
    telemetry = int(days * 6)
    prompts = max(1, events - telemetry - 2)
    span = days * DAY
    for i in range(telemetry):
        steps.append({"at": START + i * 4 * 3600 + 30, "action": "telemetry"})
    times = sorted(rng.uniform(60, span - 60) for _ in range(prompts))
    last = 0.0
    for n, at in enumerate(times):
        at = max(at, last + 45)  # one prompt at a time, past the cool-down
        last = at
        trigger = {"kind": rng.choice(["cycle_complete", "service_visit"]), "ref": f"tx-{n}"}
        roll = rng.random()
        if roll < 0.12:
            steps.append({"at": at, "trigger": trigger, "action": "timeout"})
        elif roll < 0.18:
            steps.append({"at": at, "trigger": trigger, "action": "dismiss"})
        else:
            score = rng.choices(range(11), weights=[2, 1, 1, 2, 2, 4, 6, 10, 16, 22, 24])[0]
            reason = rng.choice(["wait", "price", "staff", None]) if score <= 6 else None
            steps.append(
                {
                    "at": at,
                    "trigger": trigger,
                    "action": "answer",
                    "score": score,
                    "reason": reason,
                    "answer_ms": rng.randint(1200, 8000),
                }
            )
    mid = START + span / 2 + 17
    steps.append({"at": mid, "action": "set", "fw": "1.5.0", "rssi": -75})
    steps.append({"at": mid + 60, "action": "reboot"})
    steps.sort(key=lambda s: s["at"])
    return steps


def write_scenario(folder: Path, devices: int, events: int, seed: int) -> int:
    """One file per device; returns the number of steps written."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(devices):
        rng = random.Random(f"{seed}:{i}")
        steps = month_of_steps(rng, events)
        total += len(steps)
        doc = {
            "device": device_id(seed, i),
            "site": f"store-{i % 5 + 1}",
            "fw": "1.4.0",
            "rssi": rng.randint(-85, -50),
            "battery_mv": rng.randint(3500, 4100),
            "steps": steps,
        }
        (folder / f"{doc['device']}.json").write_text(json.dumps(doc))
    return total


def paho_reference(host: str, port: int, n: int, payload: bytes, window: int = 20) -> float:
    """Seconds for a CPython paho client to get n QoS 1 publishes acknowledged."""
    done = 0
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ref")

    def on_publish(*_: Any) -> None:
        nonlocal done
        done += 1

    client.on_publish = on_publish
    client.max_inflight_messages_set(window)
    client.connect(host, port)
    client.loop_start()
    started = time.perf_counter()
    for i in range(n):
        client.publish(f"bench/ref/{i % 20}", payload, qos=1)
    while done < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000, help="events per device")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        root = Path(tmp)
        steps = write_scenario(root / "scenario", args.devices, args.events, args.seed)
        broker = start_mosquitto(root / "broker")
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                [
                    str(Path(sys.executable).parent / "nps-edge"),
                    "sim",
                    "--broker",
                    broker.address,
                    "--scenario",
                    str(root / "scenario"),
                    "--state",
                    str(root / "state"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            payload = json.dumps({"v": 1, "pad": "x" * 330}).encode()
            ref = paho_reference(broker.host, broker.port, summary["events"], payload)
        finally:
            broker.stop()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    events = summary["events"]
    print(f"scenario: {args.devices} devices, {steps} steps, 30 days of history")
    print(
        f"firmware sim: {events} events acknowledged in {wall:.1f} s wall "
        f"({events / wall:.0f} events/s), {cpu:.1f} s CPU in all processes "
        f"({1000 * cpu / events:.2f} ms CPU per event)"
    )
    print(
        f"reference paho (CPython, one client): {events} QoS 1 publishes in {ref:.1f} s "
        f"({events / ref:.0f}/s)"
    )
    print(f"ratio firmware sim / paho reference (events/s): {ref / wall:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
