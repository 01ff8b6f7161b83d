"""Device MQTT client and firmware under the MicroPython unix port: `python -m bench.firmware_mqtt`.

Against a fresh Mosquitto on loopback, in one run:
- publish -> PUBACK latency (one at a time) and rate (8 in flight) of firmware/device/mqtt.py
  in `micropython -X heapsize=64k`, next to a naive split-write client (umqtt.simple's way:
  four socket writes per PUBLISH, no TCP_NODELAY) and paho-mqtt in CPython;
- the client's heap footprint (gc.mem_free around import + connect);
- the whole firmware: live heap after a full prompt with its event in flight, and bytes
  written to flash per event (strace of the device process).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware.sim.device import DeviceProcess, cached_firmware, tool
from firmware.sim.plans import answer_lines, device_config
from nps_edge.broker import Broker, start_mosquitto

HERE = Path(__file__).resolve().parent / "micropython"
PAYLOAD = json.dumps({"v": 1, "pad": "x" * 330}).encode()
HEAP = 64768  # what `-X heapsize=64k` gives: gc.mem_free() + gc.mem_alloc()


def micropython_json(script: str, *args: Any, code: Path) -> dict[str, Any]:
    done = subprocess.run(
        [tool("micropython"), "-X", "heapsize=64k", str(HERE / script), *map(str, args)],
        env={"MICROPYPATH": f"{code}:.frozen", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def paho(broker: Broker, n: int, window: int) -> dict[str, float]:
    """paho-mqtt (CPython): n QoS 1 publishes with `window` in flight."""
    acked: list[float] = []
    sent: dict[int, float] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{window}")

    def on_publish(_c: Any, _u: Any, mid: int, *_: Any) -> None:
        acked.append(time.perf_counter() - sent.pop(mid, time.perf_counter()))

    client.on_publish = on_publish
    client.max_inflight_messages_set(window)
    client.connect(broker.host, broker.port)
    client.loop_start()
    started = time.perf_counter()
    for i in range(n):
        while i - len(acked) >= window:
            time.sleep(0.00005)
        t = time.perf_counter()
        info = client.publish("bench/paho/feedback", PAYLOAD, qos=1)
        sent.setdefault(info.mid, t)
    while len(acked) < n:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    lat = sorted(acked)
    return {
        "rate": n / elapsed,
        "median_ms": 1000 * lat[n // 2],
        "p95_ms": 1000 * lat[int(n * 0.95)],
    }


def firmware_run(broker: Broker, code: Path, work: Path, events: int) -> dict[str, Any]:
    """The whole firmware: heap after a full prompt, flash bytes per event (strace)."""
    folder = work / "dev"
    folder.mkdir()
    cfg = device_config(
        "nps-be0001",
        "bench",
        (broker.host, broker.port),
        sim={"start_ms": 1793000000000},
        telemetry_interval_s=0,
    )
    (folder / "config.json").write_text(json.dumps(cfg))
    trace = work / "strace.txt"
    strace = shutil.which("strace")
    binary = tool("micropython")
    if strace:
        # Trace the device from its first instruction, so every flash file is seen opened.
        wrapper = work / "traced-micropython"
        wrapper.write_text(
            f"#!/bin/sh\nexec {strace} -f -e trace=openat,write,fsync,rename "
            f'-o {trace} {binary} "$@"\n'
        )
        wrapper.chmod(0o755)
        binary = str(wrapper)
    dev = DeviceProcess(folder, code, binary)
    dev.wait_for("screen idle")
    t0 = 1793000000000
    # One full prompt (score 3, a reason), then telemetry while the answer is in flight.
    dev.send(
        f"at {t0 + 60000}",
        "trigger cycle_complete tx-1",
        *answer_lines(3, 1, t0 + 64000),
        "telemetry",
    )
    dev.wait_for("acked t 3")
    tm = json.loads([ln for ln in dev.lines if ln.startswith("acked t 3")][0].split(" ", 3)[3])
    confirm = confirm_to_puback(dev, t0 + 10 * 60000, 50)
    marker = work / "flash-start.fb"  # its open in the trace marks where counting starts
    acked_before = len([ln for ln in dev.lines if ln.startswith("acked f ")])
    lines: list[str] = [f"dump {marker}"]
    for i in range(events):
        t = t0 + (i + 100) * 60000
        lines += [f"at {t}", f"trigger cycle_complete tx-{i}", *answer_lines(9, None, t + 2000)]
    dev.send(*lines)
    dev.wait_for("acked f ", count=acked_before + events, timeout=120)
    dev.close_input()
    dev.wait()
    flash: dict[str, Any] = {}
    if strace:  # strace writes its file in full only once the device has exited
        flash = flash_writes(trace.read_text().splitlines(), str(marker), events)
    return {
        "heap_free_after_prompt": tm["heap_free"],
        "heap_min": tm["heap_min"],
        **confirm,
        **flash,
    }


def confirm_to_puback(dev: DeviceProcess, start_ms: int, n: int) -> dict[str, float]:
    """From writing the confirming press to the device's stdin until its `acked` line arrives.

    It includes the flash write (fsync) and both pipes, so it is an upper bound of what the
    person's press costs until the broker has the event.
    """
    took = []
    for i in range(n):
        t = start_ms + i * 60000
        before = len([ln for ln in dev.lines if ln.startswith("acked f ")])
        sync = dev.folder / "sync.fb"
        picked = (f"at {t + 2000}", "turn 1", "turn 4", f"dump {sync}")
        dev.send(f"at {t}", f"trigger cycle_complete c-{i}", *picked)
        dev.wait_for("dumped ", count=i + 1)  # the score is picked and drawn
        started = time.perf_counter()
        dev.send("press")
        dev.wait_for("acked f ", count=before + 1)
        took.append(time.perf_counter() - started)
    took.sort()
    return {
        "confirm_to_puback_median_ms": 1000 * took[n // 2],
        "confirm_to_puback_p95_ms": 1000 * took[int(n * 0.95)],
    }


def flash_writes(trace: list[str], marker: str, events: int) -> dict[str, Any]:
    """Sum write() bytes to flash files (outbox segments, ack.json, boot.json) per event."""
    fds: dict[tuple[str, int], str] = {}
    written = 0
    appends = 0
    syncs = 0
    renames = 0
    counting = False
    for line in trace:
        pid = line.split()[0]
        if m := re.search(r'openat\(AT_FDCWD, "([^"]+)".*= (\d+)$', line):
            fds[(pid, int(m.group(2)))] = m.group(1)
            counting = counting or m.group(1) == marker
        if not counting:
            continue  # before the measured events: only learn which fd is which file
        elif m := re.search(r"write\((\d+), .*= (\d+)$", line):
            path = fds.get((pid, int(m.group(1))), "")
            if path.startswith("ob/") or path.endswith(".json") or path.endswith(".tmp"):
                written += int(m.group(2))
                appends += path.startswith(("ob/f/", "ob/t/"))
        elif "fsync(" in line:
            syncs += 1
        elif "rename(" in line:
            renames += 1
    return {
        "flash_bytes_per_event": written / events,
        "flash_writes_per_event": appends / events,
        "fsync_per_event": syncs / events,
        "state_rewrites_per_event": renames / events,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-n", type=int, default=300)
    parser.add_argument("--rate-n", type=int, default=3000)
    parser.add_argument("--naive-n", type=int, default=100, help="44 ms each: keep it small")
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args(argv)
    code = cached_firmware()
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        work = Path(tmp)
        broker = start_mosquitto(work / "broker")
        try:
            lat = micropython_json(
                "mqtt_latency.py", broker.host, broker.port, args.latency_n, 1, code=code
            )
            rate = micropython_json(
                "mqtt_latency.py", broker.host, broker.port, args.rate_n, 8, code=code
            )
            naive = micropython_json(
                "naive_client.py", broker.host, broker.port, args.naive_n, code=code
            )
            paho1 = paho(broker, args.latency_n, 1)
            paho8 = paho(broker, args.rate_n, 8)
            fw = firmware_run(broker, code, work, args.events)
        finally:
            broker.stop()
    print("publish -> PUBACK on loopback (Mosquitto), one at a time:")
    print(
        f"  device client (micropython): median {lat['median_ms']:.3f} ms, "
        f"p95 {lat['p95_ms']:.3f} ms, {lat['rate']:.0f}/s"
    )
    print(
        f"  naive split-write client (micropython, umqtt-style): median "
        f"{naive['median_ms']:.2f} ms, p95 {naive['p95_ms']:.2f} ms, {naive['rate']:.0f}/s"
    )
    print(f"  paho-mqtt (CPython): median {paho1['median_ms']:.3f} ms, {paho1['rate']:.0f}/s")
    print(
        f"  ratio naive / device client (median latency): "
        f"{naive['median_ms'] / lat['median_ms']:.0f}x"
    )
    print("rate with 8 in flight:")
    print(
        f"  device client: {rate['rate']:.0f}/s; paho (CPython): {paho8['rate']:.0f}/s; "
        f"ratio device / paho: {rate['rate'] / paho8['rate']:.2f}"
    )
    print("heap (micropython -X heapsize=64k):")
    print(
        f"  client code + objects: {lat['client_heap_bytes']} B, connected "
        f"{lat['connected_heap_bytes']} B, live with 8 in flight "
        f"{rate['live_heap_in_flight_bytes']} B; naive client {naive['client_heap_bytes']} B"
    )
    used = HEAP - fw["heap_free_after_prompt"]
    print(
        f"  whole firmware after a full prompt, event in flight: {used} B live of {HEAP} "
        f"(heap_free {fw['heap_free_after_prompt']}, heap_min {fw['heap_min']})"
    )
    print(
        f"confirm (press) -> PUBACK, whole firmware, flash write included: median "
        f"{fw['confirm_to_puback_median_ms']:.2f} ms, p95 {fw['confirm_to_puback_p95_ms']:.2f} ms"
        f" (naive client alone: {naive['median_ms']:.1f} ms)"
    )
    if "flash_bytes_per_event" in fw:
        print(
            f"flash per event: {fw['flash_bytes_per_event']:.0f} B written, "
            f"{fw['flash_writes_per_event']:.2f} appends, {fw['fsync_per_event']:.2f} syncs, "
            f"{fw['state_rewrites_per_event']:.3f} ack-pointer rewrites"
        )
    print(
        json.dumps(
            {
                "device": lat,
                "device_window8": rate,
                "naive": naive,
                "paho": paho1,
                "paho_window8": paho8,
                "firmware": fw,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
