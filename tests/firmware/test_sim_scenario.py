"""`nps-edge sim --scenario DIR`: scripted history, fast-forwarded, exactly as the files say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nps_edge.broker import Broker

AT = 1793000000.0

DEVICE_A = {
    "device": "nps-00a1b2",
    "site": "store-1",
    "fw": "1.4.0",
    "rssi": -60,
    "battery_mv": 3900,
    "steps": [
        {
            "at": AT + 100,
            "trigger": {"kind": "cycle_complete", "ref": "tx-1"},
            "action": "answer",
            "score": 9,
            "reason": None,
            "answer_ms": 2300,
        },
        {"at": AT + 900, "trigger": {"kind": "walkup", "ref": None}, "action": "timeout"},
        {"at": AT + 1500, "trigger": {"kind": "service_visit", "ref": "sv-3"}, "action": "dismiss"},
        {"at": AT + 2000, "action": "set", "fw": "1.5.0", "rssi": -82, "battery_mv": 3600},
        {"at": AT + 2100, "action": "telemetry"},
        {
            "at": AT + 2500,
            "trigger": {"kind": "cycle_complete", "ref": "tx-2"},
            "action": "answer",
            "score": 3,
            "reason": "slow",
            "answer_ms": 4100,
        },
        {"at": AT + 3000, "action": "reboot"},
        {
            "at": AT + 3600,
            "trigger": {"kind": "cycle_complete", "ref": "tx-3"},
            "action": "answer",
            "score": 6,
            "reason": None,
            "answer_ms": 1000,
        },
    ],
}
DEVICE_B = {
    "device": "nps-00c3d4",
    "site": "store-2",
    "fw": "1.4.0",
    "rssi": -50,
    "battery_mv": 4000,
    "steps": [
        {
            "at": AT + 60 * i,
            "trigger": {"kind": "cycle_complete", "ref": f"b-{i}"},
            "action": "answer",
            "score": 10 - i,
            "reason": "dirty" if 10 - i <= 6 else None,
            "answer_ms": 1500,
        }
        for i in range(1, 6)
    ],
}


@pytest.mark.slow
def test_scenario_files_drive_devices_through_their_history(
    run_sim, micropython_bin: str, mqtt_broker: Broker, subscriber, tmp_path: Path
) -> None:
    scenario = tmp_path / "scenario"
    scenario.mkdir()
    (scenario / "a.json").write_text(json.dumps(DEVICE_A))
    (scenario / "b.json").write_text(json.dumps(DEVICE_B))
    (scenario / "notes.txt").write_text("not a scenario file")
    done = run_sim(
        "--broker",
        mqtt_broker.address,
        "--scenario",
        str(scenario),
        "--state",
        str(tmp_path / "state"),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["devices"] == 2
    assert summary["shown"] == 3 + 2 + 5
    assert summary["answered"] == 3 + 5
    assert summary["scores"] == {
        "0": 0,
        "1": 0,
        "2": 0,
        "3": 1,
        "4": 0,
        "5": 1,
        "6": 2,
        "7": 1,
        "8": 1,
        "9": 2,
        "10": 0,
    }
    received = subscriber.wait_for(lambda evs: len({e["id"] for e in evs}) >= summary["events"])
    unique = {e["id"]: e for e in received}  # a reboot may re-send: same id, same event
    assert all(unique[e["id"]] == e for e in received)
    assert len(unique) == summary["events"]
    events = list(unique.values())

    a = sorted((e for e in events if e["device"] == "nps-00a1b2"), key=lambda e: e["seq"])
    assert [e["seq"] for e in a] == list(range(1, len(a) + 1))
    feedback = [e for e in a if e["type"] == "feedback"]
    assert [
        (e["ts"], e["outcome"], e.get("score"), e["reason"], e["trigger"]["kind"]) for e in feedback
    ] == [
        (AT + 100, "answered", 9, None, "cycle_complete"),
        (AT + 900, "timeout", None, None, "walkup"),
        (AT + 1500, "dismissed", None, None, "service_visit"),
        (AT + 2500, "answered", 3, "slow", "cycle_complete"),
        (AT + 3600, "answered", 6, None, "cycle_complete"),
    ]
    assert feedback[0]["answer_ms"] == 2300 and feedback[3]["answer_ms"] == 4100
    assert [e["fw"] for e in feedback] == ["1.4.0", "1.4.0", "1.4.0", "1.5.0", "1.5.0"]
    assert feedback[3]["ctx"] == {"rssi": -82, "battery_mv": 3600}
    assert [e["boot"] for e in feedback] == [0, 0, 0, 0, 1]
    telemetry = [e for e in a if e["type"] == "telemetry"]
    asked = [e for e in telemetry if e["ts"] == AT + 2100]
    assert len(asked) == 1 and asked[0]["rssi"] == -82 and asked[0]["battery_mv"] == 3600
    rebooted = [e for e in telemetry if e["boot"] == 1]
    assert rebooted[0]["ts"] == AT + 3000 and rebooted[0]["fw"] == "1.5.0"

    b = [e for e in events if e["device"] == "nps-00c3d4" and e["type"] == "feedback"]
    assert sorted(e["ts"] for e in b) == [AT + 60 * i for i in range(1, 6)]
    assert {e["site"] for e in b} == {"store-2"}
    assert sorted(e["reason"] or "" for e in b) == ["", "", "", "dirty", "dirty"]


def test_bad_scenario_file_is_reported(run_sim, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"device": "nps-000001", "steps": []}')
    done = run_sim("--broker", "127.0.0.1:1", "--scenario", str(tmp_path))
    assert done.returncode == 1
    assert "x.json: not a scenario file" in done.stderr
