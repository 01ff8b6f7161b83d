"""Firmware updates end to end: the real firmware under micropython, real Mosquitto, signed
update commands from paho, release files from a Range-capable HTTP server (FLEET design).

A device process that exits (reboot, crash, kill -9) is started again on the same flash
folder, as power coming back would; what it reports in its retained status is the proof.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.fleet_kit import (
    FileServer,
    build_release,
    file_server,
    key_from,
    pub,
    publish,
    signed,
    statuses,
)

pytestmark = pytest.mark.slow

DEVICE = "nps-0da0da"
# The factory code runs from the ROM image, but an installed release runs from .mpy files in
# fw/<version> on flash, its code in the heap (about 22 KB more): at 96k it has 32 KB free after
# boot, too little for a signature check (MemoryError in sha512). docs/firmware.md, Updates.
HEAP = "128k"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Signed bundles 1.6.0 and 1.6.1, a crash-looping 1.7.0 and 1.6.0 signed by another key."""
    root = tmp_path_factory.mktemp("releases")
    key, other = key_from(10), key_from(11)
    made = {v: build_release(root / v, v, key) for v in ("1.6.0", "1.6.1")}
    made["1.7.0"] = build_release(root / "1.7.0", "1.7.0", key, crash=True)
    made["9.9.9"] = build_release(root / "9.9.9", "9.9.9", other)
    return {"root": root, "key": key, "made": made}


class Rig:
    """One device on the test broker, kept powered: started again whenever it exits."""

    def __init__(self, devices: Any, folder: Path, sub: Any, broker: Any) -> None:
        self.devices = devices
        self.folder = folder
        self.sub = sub
        self.broker = broker
        self.n = 0
        self.exits: list[int] = []
        self.exits_at_update = 0  # a boot loop is judged per update
        self.dev = devices.start(folder, heapsize=HEAP)

    def keep_powered(self) -> None:
        code = self.dev.proc.poll()
        if code is not None:
            self.dev.wait()
            self.exits.append(code)
            recent = self.exits[self.exits_at_update :]
            assert len(recent) < 6, f"boot loop: {recent}; {self.dev.log_tail()}"
            self.dev = self.devices.start(self.folder, heapsize=HEAP)

    def status(self, check: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.keep_powered()
            seen = statuses(self.sub, DEVICE)
            if seen and seen[-1].get("online") and check(seen[-1]):
                return seen[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"status not reached; last {seen[-2:]}: {self.dev.log_tail()}")
            time.sleep(0.05)

    def update(self, server: FileServer, version: str, made: dict[str, Any], **over: Any) -> None:
        self.n += 1
        self.exits_at_update = len(self.exits)
        release = {"version": version, "url": server.url(version), **made[version], **over}
        cmd = {"device": DEVICE, "n": self.n, "kind": "update", "exp": None, "release": release}
        publish(self.broker, f"nps/v1/{DEVICE}/cmd", signed(self.key, cmd))

    key: Any = None


def rig_for(devices: Any, config: Any, broker: Any, sub: Any, releases: dict[str, Any]) -> Rig:
    cfg = config(broker, device=DEVICE, sim={"start_ms": 1_793_000_000_000})
    cfg.pop("fw", None)  # report the version of the code that runs
    cfg["trust"] = {"release_pub": pub(releases["key"]), "command_pub": pub(releases["key"])}
    rig = Rig(devices, devices.folder("d", cfg), sub, broker)
    rig.key = releases["key"]
    rig.status(lambda s: s["fw"] == "1.0.0")
    return rig


def test_update_applied_then_crash_looping_one_rolled_back(
    devices, config, mqtt_broker, subscriber, releases
) -> None:
    rig = rig_for(devices, config, mqtt_broker, subscriber, releases)
    with file_server(releases["root"]) as server:
        rig.update(server, "1.6.0", releases["made"])
        status = rig.status(lambda s: s["fw"] == "1.6.0" and s["update"] == "applied")
        assert status["cmd"] == 1
        pointer = json.loads((rig.folder / "fw.json").read_text())
        assert pointer["active"] == "fw/1.6.0" and pointer["previous"] == ""
        assert not pointer["pending"]
        ranges = [r for p, r in server.requests if p.endswith("app.mpy")]
        assert ranges and all(r and r.startswith("bytes=") for r in ranges)

        rig.update(server, "1.7.0", releases["made"])  # crashes at every start
        status = rig.status(lambda s: s["update"] == "rolled_back")
        assert status["fw"] == "1.6.0"  # back on the previous folder, by itself
        assert 1 in rig.exits  # the crash it rolled back from
        pointer = json.loads((rig.folder / "fw.json").read_text())
        assert pointer["active"] == "fw/1.6.0" and pointer["rolled_back"] == "fw/1.7.0"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("manifest_hash", "refused:manifest_hash"),
        ("signature", "refused:signature"),
        ("truncated", "refused:truncated"),
        ("tampered", "refused:hash"),
    ],
)
def test_corrupted_update_refused_and_reported(
    devices, config, mqtt_broker, subscriber, releases, tmp_path, change, reason
) -> None:
    rig = rig_for(devices, config, mqtt_broker, subscriber, releases)
    served = tmp_path / "served"
    made = dict(releases["made"])
    version = "9.9.9" if change == "signature" else "1.6.1"
    import shutil

    shutil.copytree(releases["root"] / version, served / version)
    over: dict[str, Any] = {}
    app = served / version / "app.mpy"
    if change == "manifest_hash":
        over["manifest_sha256"] = "00" * 32
    elif change == "truncated":
        app.write_bytes(app.read_bytes()[: app.stat().st_size // 2])
    elif change == "tampered":
        data = bytearray(app.read_bytes())
        data[len(data) // 2] ^= 0xFF
        app.write_bytes(bytes(data))
    with file_server(served) as server:
        rig.update(server, version, made, **over)
        status = rig.status(lambda s: s["update"] == reason)
    assert status["fw"] == "1.0.0" and status["cmd"] == 1
    assert not (rig.folder / "fw.json").exists()  # never switched
    assert not (rig.folder / "fw" / "stage").exists()  # staging cleared
    assert rig.exits == []


def staged(folder: Path) -> int:
    """Files in the device's staging folder (0 while it is absent or being renamed)."""
    try:
        return sum(1 for p in (folder / "fw" / "stage").rglob("*") if p.is_file())
    except OSError:
        return 0


def test_kill_9_at_random_points_of_updates_leaves_a_device_that_boots(
    devices, config, mqtt_broker, subscriber, releases
) -> None:
    rng = random.Random(1414)
    rig = rig_for(devices, config, mqtt_broker, subscriber, releases)
    versions = ["1.6.0", "1.6.1"]
    phases = []
    with file_server(releases["root"]) as server:
        for point in range(10):
            version = versions[point % 2]
            rig.update(server, version, releases["made"])
            # The power cut lands at a seeded point: after `files` staged files, or
            # (past the last one) around the switch, the reboot and the confirmation.
            files = rng.randint(0, 40)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and staged(rig.folder) < files:
                if rig.dev.proc.poll() is not None:
                    break  # switched and rebooting
                time.sleep(0.002)
            rig.dev.kill()
            state = rig.folder / "ota.json"
            phases.append(json.loads(state.read_text())["status"] if state.exists() else None)
            rig.dev = rig.devices.start(rig.folder, heapsize=HEAP)
            # It boots, and finishes the update it had started (resumed from staging).
            rig.status(lambda s, v=version: s["fw"] == v and s["update"] == "applied", 40)
    assert json.loads((rig.folder / "fw.json").read_text())["active"] == "fw/1.6.1"
    print("kill -9 phases:", phases)
    assert phases.count("staging") >= 3, phases  # cuts in the middle of downloads


def test_repeated_failed_boots_end_in_safe_mode_with_factory_settings(
    devices, config, mqtt_broker, subscriber
) -> None:
    cfg = config(mqtt_broker, device=DEVICE, sim={"start_ms": 1_793_000_000_000})
    cfg.pop("fw", None)
    folder = devices.folder("d", cfg)
    override = {"n": 4, "cfg": 7, "set": {"prompt": {"text": "Remote text?"}}}
    (folder / "cmd.json").write_text(json.dumps(override))
    # The third failed boot in a row of a confirmed firmware (main.py counts, health clears).
    pointer = {"active": "fw/1.6.0", "previous": "", "pending": False, "boots": 3, "max": 3}
    (folder / "fw.json").write_text(json.dumps(pointer))
    devices.start(folder, heapsize=HEAP)
    deadline = time.monotonic() + 20
    while not [s for s in statuses(subscriber, DEVICE) if s.get("online")]:
        assert time.monotonic() < deadline, "no status"
        subscriber.wait_messages(len(subscriber.messages) + 1)
    status = [s for s in statuses(subscriber, DEVICE) if s.get("online")][-1]
    assert status["safe"] is True and status["fw"] == "1.0.0"  # the factory code at the root
    assert (status["cfg"], status["cmd"]) == (0, 4)  # factory settings, replays still refused
    assert json.loads((folder / "fw.json").read_text())["safe"] is True


def test_a_pointer_to_a_missing_folder_boots_the_previous_one(
    devices, config, mqtt_broker, subscriber
) -> None:
    cfg = config(mqtt_broker, device=DEVICE, sim={"start_ms": 1_793_000_000_000})
    cfg.pop("fw", None)
    folder = devices.folder("d", cfg)
    pointer = {"active": "fw/2.0.0", "previous": "", "pending": True, "boots": 0, "max": 3}
    (folder / "fw.json").write_text(json.dumps(pointer))
    devices.start(folder, heapsize=HEAP)
    deadline = time.monotonic() + 20
    while not [s for s in statuses(subscriber, DEVICE) if s.get("online")]:
        assert time.monotonic() < deadline, "no status"
        subscriber.wait_messages(len(subscriber.messages) + 1)
    saved = json.loads((folder / "fw.json").read_text())
    assert saved["active"] == "" and saved["rolled_back"] == "fw/2.0.0"
