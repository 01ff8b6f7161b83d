"""Never lose a score: SIGKILL mid-stream, the broker going away, a full outbox."""

from __future__ import annotations

import json
import random
import time

import pytest

from firmware.sim.plans import answer_lines
from nps_edge.broker import free_port, start_mosquitto

T0 = 1793000000000


def prompts(n: int, start_ms: int, rng: random.Random) -> list[str]:
    """n answered prompts, a minute apart, random scores (reasons skipped)."""
    lines: list[str] = []
    for i in range(n):
        t = start_ms + i * 60000
        lines += [f"at {t}", f"trigger cycle_complete tx-{t}"]
        lines += answer_lines(rng.randint(0, 10), None, t + 1500)
    return lines


def saved_seqs(dev, kind: str = "f") -> set[int]:
    """Events the device confirmed on screen: written to flash before "thank you"."""
    return {int(ln.split()[2]) for ln in dev.lines if ln.startswith(f"saved {kind} ")}


def by_id(events: list[dict]) -> dict[str, dict]:
    """Duplicates are harmless only if they are the very same event."""
    seen: dict[str, dict] = {}
    for e in events:
        assert seen.setdefault(e["id"], e) == e, f"two different events share id {e['id']}"
    return seen


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_confirmed_event_and_seq_continues(
    devices, config, mqtt_broker, subscriber
) -> None:
    rng = random.Random(3)
    folder = devices.folder("d", config(mqtt_broker, sim={"start_ms": T0}))
    confirmed: set[int] = set()
    t = T0
    for run in range(4):
        dev = devices.start(folder)
        dev.send(*prompts(40, t + 60000, rng))
        t += 41 * 60000
        dev.wait_for("saved f ", count=rng.randint(5, 30))
        dev.kill()  # a power cut at whatever point the firmware had reached
        confirmed |= saved_seqs(dev)
        assert dev.proc.returncode == -9, f"run {run} ended by itself"
    dev = devices.start(folder)
    dev.send(*prompts(3, t + 60000, rng))
    dev.close_input()
    assert dev.wait() == 0
    confirmed |= saved_seqs(dev)
    after = saved_seqs(dev)
    events = by_id(subscriber.wait_for(lambda evs: confirmed <= {e["seq"] for e in evs}))
    received = {e["seq"] for e in events.values()}
    assert confirmed <= received  # every event confirmed on screen reached the broker
    assert received == set(range(1, max(received) + 1))  # and no seq is missing
    assert min(after) > max(confirmed - after)  # seq continues across reboots
    boots = sorted({e["boot"] for e in events.values()})
    assert boots == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_prompt_stays_responsive_while_the_broker_is_down_and_the_backlog_drains(
    devices, config, mqtt_broker, make_subscriber
) -> None:
    # A persistent subscriber session survives the broker restart (same data folder).
    first = make_subscriber(mqtt_broker, client_id="durable", clean=False)
    first.wait_for(lambda _: True)
    dev = devices.start(devices.folder("d", config(mqtt_broker, sim={"start_ms": T0})))
    dev.send(*prompts(1, T0 + 60000, random.Random(1)))
    dev.wait_for("acked f ")
    first.wait_for(lambda evs: any(e["type"] == "feedback" for e in evs))
    first.close()
    mqtt_broker.stop()  # the site's broker goes away
    rng = random.Random(2)
    for i in range(5):  # people keep answering; each answer is confirmed at once
        started = time.monotonic()
        dev.send(*prompts(1, T0 + (i + 2) * 60000, rng))
        dev.wait_for("saved f ", count=i + 2, timeout=5)
        assert time.monotonic() - started < 3.0  # no network wait (ack timeout is 10 s)
    assert len([ln for ln in dev.lines if ln.startswith("acked f ")]) == 1
    time.sleep(0.5)  # the broker stays away for a while (device keeps retrying)
    assert dev.proc.poll() is None
    broker = start_mosquitto(mqtt_broker.workdir, port=mqtt_broker.port)
    sub = make_subscriber(broker, client_id="durable", clean=False)
    try:
        dev.wait_for("acked f ", count=6, timeout=20)  # the backlog drains
        backlog = saved_seqs(dev) - {e["seq"] for e in first.events()}
        assert len(backlog) == 5
        events = sub.wait_for(lambda evs: backlog <= {e["seq"] for e in evs})
        assert saved_seqs(dev) <= {e["seq"] for e in events + first.events()}
        dev.send("telemetry")
        tm = sub.wait_for(lambda evs: any(e["type"] == "telemetry" and e["seq"] > 7 for e in evs))
        errors = [e for e in tm if e["type"] == "telemetry"][-1]["errors"]
        assert errors.get("mqtt_drop", 0) + errors.get("mqtt_connect_fail", 0) >= 1
    finally:
        broker.stop()


@pytest.mark.slow
def test_full_outbox_drops_oldest_telemetry_first_and_counts_it(
    devices, config, mqtt_broker, subscriber
) -> None:
    dead = config(mqtt_broker, sim={"start_ms": T0}, outbox={"max_kb": 8, "segment_kb": 1})
    dead["broker"]["port"] = free_port()  # nobody listens: everything stays on flash
    folder = devices.folder("d", dead)
    dev = devices.start(folder)
    rng = random.Random(5)
    lines: list[str] = []
    for i in range(12):
        lines += [f"at {T0 + i * 60000 + 30000}", "telemetry", "telemetry"]
        lines += prompts(1, T0 + i * 60000 + 40000, rng)
    dev.send(*lines, "telemetry")
    dev.wait_for("saved t ", count=26)
    dev.kill()
    feedback = saved_seqs(dev, "f")
    telemetry = saved_seqs(dev, "t")
    assert len(feedback) == 12
    live = dict(dead, broker=dict(dead["broker"], port=mqtt_broker.port))
    (folder / "config.json").write_text(json.dumps(live))
    dev = devices.start(folder)
    dev.close_input()
    assert dev.wait() == 0
    events = by_id(subscriber.wait_for(lambda evs: feedback <= {e["seq"] for e in evs}))
    got_tm = {e["seq"] for e in events.values() if e["type"] == "telemetry"}
    assert feedback <= {e["seq"] for e in events.values()}  # no feedback was dropped
    lost = telemetry - got_tm
    assert lost and min(telemetry) in lost  # the oldest telemetry went first
    last = max(telemetry)
    assert last in got_tm
    counted = [e for e in events.values() if e["seq"] == last][0]["errors"]
    assert counted["outbox_dropped_telemetry"] == len(lost)
