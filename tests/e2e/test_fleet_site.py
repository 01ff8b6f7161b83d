"""Issue 14's proof through a whole site: the real firmware under the unix port, the real
Mosquitto, the gateway and the server, each its own process. An operator changes a device's
settings on the server; the server signs the command, the gateway fetches and relays it,
the device checks and applies it and reports its config version in its status, which the
gateway passes back: the server then shows no drift. A command signed by another key and
published on the site's broker changes nothing and is reported as refused."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from firmware.sim.plans import device_config
from tests.e2e.conftest import SITE, Site
from tests.firmware.conftest import Devices, devices, firmware_code  # noqa: F401  (fixtures)
from tests.firmware.fleet_kit import key_from, publish, signed

pytestmark = pytest.mark.slow

DEVICE = "nps-f1ee70"
T0 = 1_793_000_000_000
HEAP = "96k"  # a signature check needs room for its big ints (docs/firmware.md, Heap)


@pytest.fixture
def fast_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway started by `site` fetches commands every half second, not every 10 s."""
    monkeypatch.setenv("NPS_EDGE_COMMAND_POLL_S", "0.5")


def _config(site: Site) -> Any:
    with site.api as client:
        return client.get(f"/api/v1/devices/{DEVICE}/config")


def test_a_setting_changed_on_the_server_is_applied_and_reported_and_a_forgery_refused(
    fast_relay: None,
    site: Site,
    devices: Devices,  # noqa: F811  (the firmware tests' fixture)
    nps_edge_bin: str,
) -> None:
    db = f"sqlite:///{site.workdir / 'server.db'}"
    command_pub = subprocess.run(
        [nps_edge_bin, "fleet", "key", "--db", db],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    cfg = device_config(DEVICE, SITE, (site.broker.host, site.broker.port), sim={"start_ms": T0})
    cfg["trust"] = {"command_pub": command_pub, "release_pub": None}
    devices.start(devices.folder("d", cfg), heapsize=HEAP)
    site.wait_for(lambda: _config(site).status_code == 200, "the server to know the device")
    assert _config(site).json()["reported"]["cfg"] in (None, 0)

    with site.api as client:
        changed = client.put(
            f"/api/v1/devices/{DEVICE}/config",
            json={
                "set": {"prompt": {"text": "Would you come back?"}, "timeouts": {"prompt_s": 45}}
            },
        )
    assert changed.status_code == 200, changed.text
    site.wait_for(
        lambda: (c := _config(site).json())["reported"]["cfg"] == c["desired"]["cfg"] >= 1,
        "the device to report the desired config version",
    )
    after = _config(site).json()
    assert after["drift"] is False and after["reported"]["cmd_error"] is None

    # Someone on the site's network signs with their own key: refused, counted, reported.
    forged = signed(key_from(99), {"device": DEVICE, "n": 1000, "kind": "config", "exp": None,
                                   "cfg": 1000, "set": {"prompt": {"text": "pwned"}}})  # fmt: skip
    publish(site.broker, f"nps/v1/{DEVICE}/cmd", forged)
    site.wait_for(
        lambda: _config(site).json()["reported"]["cmd_error"] == "cmd_sig",
        "the refusal in the device's status",
    )
    last = _config(site).json()
    assert last["reported"]["cfg"] == after["reported"]["cfg"] and last["drift"] is False
