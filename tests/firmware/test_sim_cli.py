"""`nps-edge sim` end to end: the real firmware in the real micropython binary, a real broker."""

from __future__ import annotations

import json
import time

import pytest

from nps_edge.broker import Broker


@pytest.mark.slow
def test_sim_one_device_one_response_publishes_a_valid_feedback(
    run_sim, micropython_bin: str, mqtt_broker: Broker, subscriber
) -> None:
    done = run_sim(
        "--broker",
        mqtt_broker.address,
        "--devices",
        "1",
        "--responses",
        "1",
        "--seed",
        "7",
        "--site",
        "store-9",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["devices"] == 1
    assert summary["answered"] == 1
    assert sum(summary["scores"].values()) == 1
    events = subscriber.wait_for(lambda evs: len(evs) >= summary["events"])
    assert len(events) == summary["events"]
    feedback = [e for e in events if e["type"] == "feedback"]
    assert len(feedback) == summary["shown"]
    answered = [e for e in feedback if e["outcome"] == "answered"]
    assert len(answered) == 1
    assert summary["scores"][str(answered[0]["score"])] == 1
    assert {e["site"] for e in events} == {"store-9"}
    assert answered[0]["device"].startswith("nps-") and len(answered[0]["device"]) == 10
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, len(seqs) + 1))  # nothing missing


@pytest.mark.slow
def test_sim_options_and_state_kept_between_runs(
    run_sim, micropython_bin: str, mqtt_broker: Broker, make_subscriber, tmp_path
) -> None:
    sub = make_subscriber(mqtt_broker, "acme/nps/#", client_id="acme")
    sub.wait_for(lambda _: True)
    command = [
        "--broker",
        mqtt_broker.address,
        "--devices",
        "2",
        "--responses",
        "3",
        "--seed",
        "11",
        "--topic-root",
        "acme/nps",
        "--fw",
        "9.9.9",
        "--state",
        str(tmp_path / "flash"),
    ]
    summaries = []
    for _ in range(2):
        done = run_sim(*command)
        assert done.returncode == 0, done.stderr
        assert "sim: " in done.stderr  # progress on stderr, the summary alone on stdout
        summaries.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert all(s["devices"] == 2 and s["answered"] == 6 for s in summaries)
    total = summaries[0]["events"] + summaries[1]["events"]
    events = sub.wait_for(lambda evs: len({e["id"] for e in evs}) >= total)
    assert len({e["id"] for e in events}) == total  # the second run never reused an id
    assert {e["fw"] for e in events} == {"9.9.9"}
    for device in {e["device"] for e in events}:
        mine = sorted({(e["seq"], e["boot"]) for e in events if e["device"] == device})
        assert [seq for seq, _ in mine] == list(range(1, len(mine) + 1))
        assert {boot for _, boot in mine} == {0, 1}  # the flash folder was kept
    assert sorted((tmp_path / "flash").iterdir())  # per-device flash folders stayed


def test_sim_says_clearly_when_the_broker_is_not_there(run_sim) -> None:
    from nps_edge.broker import free_port

    port = free_port()
    done = run_sim("--broker", f"127.0.0.1:{port}", "--devices", "1")
    assert done.returncode == 1
    assert f"cannot reach the broker at 127.0.0.1:{port}" in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_sim_stops_a_device_whose_broker_never_answers(run_sim, tmp_path) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP, never speaks MQTT
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        done = run_sim(
            "--broker", f"127.0.0.1:{port}", "--stall-timeout", "2", "--state", str(tmp_path)
        )
    assert done.returncode == 1
    assert "nothing acknowledged for 2s; is the broker at 127.0.0.1:" in done.stderr
    saved = list(tmp_path.glob("nps-*/ob/f/*"))
    assert saved  # the answers are safe on the device's flash, waiting for a broker


@pytest.mark.slow
def test_paced_devices_run_on_the_real_clock(
    run_sim, micropython_bin: str, mqtt_broker: Broker, subscriber
) -> None:
    """--pace: the real clock, so an answer's ts is now, not a fast-forwarded future."""
    before = time.time()
    done = run_sim(
        "--broker",
        mqtt_broker.address,
        "--devices",
        "1",
        "--responses",
        "2",
        "--pace",
        "14",
        "--seed",
        "5",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["answered"] == 2
    events = subscriber.wait_for(lambda evs: len(evs) >= summary["events"])
    stamps = sorted(e["ts"] for e in events if e["type"] == "feedback")
    assert before - 1 <= stamps[0] and stamps[-1] <= time.time() + 1
    assert stamps[-1] - stamps[0] >= 14  # one pace apart at least
