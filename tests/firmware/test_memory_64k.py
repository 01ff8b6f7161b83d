"""The firmware in a 64 KB heap (docs/firmware.md, Heap): long backlog, reconnects, long run.

Each runs the real firmware (code from its ROM image, the state in `-X heapsize=64k`)
and fails on any MemoryError in the device's log; telemetry's heap_min must be a real
low point (at most heap_free, above zero). Before the fixed buffers, `nps-edge sim
--devices 2 --responses 3000` died after 47 and 111 events (fragmentation).
"""

from __future__ import annotations

import json
import random

import pytest

from firmware.sim.plans import answer_lines
from nps_edge.broker import free_port, start_mosquitto

T0 = 1793000000000


def prompts(n: int, start_ms: int, rng: random.Random) -> list[str]:
    lines: list[str] = []
    for i in range(n):
        t = start_ms + i * 60000
        lines += [f"at {t}", f"trigger cycle_complete tx-{i}-{'x' * rng.randint(0, 100)}"]
        lines += answer_lines(rng.randint(0, 10), rng.choice([None, 0, 1]), t + 1500)
    return lines


def no_memory_error(dev) -> None:
    log = dev.log_tail(100000)
    assert "MemoryError" not in log, log[-2000:]


def heap_figures(events: list[dict]) -> list[tuple[int, int]]:
    return [(e["heap_free"], e["heap_min"]) for e in events if e["type"] == "telemetry"]


@pytest.mark.slow
def test_a_long_backlog_replays_in_64k(devices, config, mqtt_broker, subscriber) -> None:
    """400 answers and telemetry written while offline, then all sent in one go after a reboot."""
    dead = ("127.0.0.1", free_port())
    cfg = config(mqtt_broker, sim={"start_ms": T0})
    cfg["broker"]["port"] = dead[1]
    folder = devices.folder("d", cfg)
    dev = devices.start(folder)
    rng = random.Random(7)
    lines = prompts(400, T0 + 60000, rng)
    for i in range(0, len(lines), 200):
        dev.send(*lines[i : i + 200], "telemetry")
    dev.wait_for("saved f ", count=400, timeout=25)
    dev.send("quit")
    dev.wait()
    no_memory_error(dev)
    cfg["broker"]["port"] = mqtt_broker.port
    (folder / "config.json").write_text(json.dumps(cfg))
    dev = devices.start(folder)
    dev.close_input()  # drain: send everything, then exit
    assert dev.wait(60) == 0
    no_memory_error(dev)
    events = subscriber.wait_for(
        lambda evs: len({e["id"] for e in evs if e["type"] == "feedback"}) >= 400, timeout=20
    )
    figures = heap_figures(events)
    assert figures and all(0 < low <= free for free, low in figures), figures


@pytest.mark.slow
def test_many_reconnects_in_64k(devices, config, mqtt_broker) -> None:
    """The broker goes away and comes back 8 times while answers keep coming: no leak, no error."""
    dev = devices.start(devices.folder("d", config(mqtt_broker, sim={"start_ms": T0})))
    rng = random.Random(3)
    broker = mqtt_broker
    t = T0 + 60000
    try:
        for round_ in range(8):
            dev.send(*prompts(20, t, rng))
            t += 20 * 60000
            dev.wait_for("acked f ", count=25 * round_ + 1, timeout=20)
            broker.stop()
            dev.send(*prompts(5, t, rng))
            t += 5 * 60000
            dev.wait_for("saved f ", count=25 * round_ + 25, timeout=20)
            broker = start_mosquitto(mqtt_broker.workdir, port=mqtt_broker.port)
            dev.wait_for("acked f ", count=25 * round_ + 25, timeout=20)
        dev.close_input()
        assert dev.wait(30) == 0
    finally:
        if broker is not mqtt_broker:
            broker.stop()
    no_memory_error(dev)


@pytest.mark.slow
def test_a_long_run_in_64k(run_sim, mqtt_broker, tmp_path) -> None:
    """The run that died after 47 and 111 events: 2 devices, 1500 answers each."""
    done = run_sim(
        "--broker",
        f"{mqtt_broker.host}:{mqtt_broker.port}",
        "--devices",
        "2",
        "--responses",
        "1500",
        "--state",
        str(tmp_path / "state"),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["answered"] == 3000
    for log in (tmp_path / "state").glob("*/device.log"):
        assert "MemoryError" not in log.read_text()
