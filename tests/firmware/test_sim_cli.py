"""`nps-edge sim` end to end: the real firmware in the real micropython binary, a real broker."""

from __future__ import annotations

import json
import subprocess

import pytest

from nps_edge.broker import Broker


@pytest.mark.slow
def test_sim_one_device_one_response_publishes_a_valid_feedback(
    nps_edge_bin: str, micropython_bin: str, mqtt_broker: Broker, subscriber
) -> None:
    done = subprocess.run(
        [
            nps_edge_bin,
            "sim",
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
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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
