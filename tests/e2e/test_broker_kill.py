"""Issue 17's chaos promise for the broker: SIGKILL Mosquitto while it holds events it has
already PUBACKed to the device, and every answer the device confirmed on screen still
reaches the server exactly once. The real firmware, Mosquitto, gateway and server, each
its own process. The device keeps each event until the gateway's ack covers it, so it
sends the lost ones again after its reconnect (or after `outbox.confirm_timeout_s`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from firmware.sim.plans import device_config
from nps_edge.broker import start_mosquitto
from nps_edge.processes import start_gateway
from tests.e2e.conftest import GATEWAY_ID, SITE, Site
from tests.firmware.conftest import Devices, devices, firmware_code  # noqa: F401  (fixtures)
from tests.firmware.test_device_durability import T0, prompts, saved_seqs

pytestmark = pytest.mark.slow
DEVICE = "nps-b20c11"


def restart_gateway(site: Site) -> None:
    site.gateway = start_gateway(
        str(site.server.url),
        site.gateway_token,
        site.broker.address,
        site.store,
        site.workdir / "gateway.log",
        extra=("--metrics-port", "0", "--gateway-id", GATEWAY_ID),
    )


def server_has(site: Site, saved: set[int]) -> bool:
    with site.api as client:
        answer = client.get(f"/api/v1/devices/{DEVICE}/gaps")
    if answer.status_code == 404:  # the server has not heard of the device yet
        return False
    gaps = answer.raise_for_status().json()
    return bool(gaps["max_seq"] >= max(saved) and not gaps["missing"])


def test_a_broker_killed_holding_pubacked_events_loses_none_of_them(
    site: Site,
    devices: Devices,  # noqa: F811  (the firmware tests' fixture)
) -> None:
    broker = site.broker
    cfg = device_config(DEVICE, SITE, (broker.host, broker.port), sim={"start_ms": T0})
    cfg["outbox"] = {"confirm_timeout_s": 2}
    dev = devices.start(devices.folder("d", cfg))
    rng = random.Random(17)
    dev.send(*prompts(3, T0 + 60000, rng))
    dev.wait_for("saved f ", count=3)
    site.wait_for(lambda: server_has(site, saved_seqs(dev)), "the first answers")

    # The gateway dies: the broker queues the device's events for its persistent session,
    # in memory, and PUBACKs each to the device at once.
    site.gateway.kill()
    dev.send(*prompts(4, T0 + 10 * 60000, rng))
    dev.wait_for("acked f ", count=3 + 4)
    held = saved_seqs(dev)
    # SIGKILL before its autosave: what it held in memory is gone. Its last autosave is
    # removed too, so the test does not depend on where the 10 s autosave tick fell.
    broker.kill()
    assert broker.workdir is not None
    Path(broker.workdir, "mosquitto.db").unlink(missing_ok=True)
    site.broker = start_mosquitto(broker.workdir, port=broker.port)
    try:
        restart_gateway(site)
        dev.send(*prompts(2, T0 + 20 * 60000, rng))  # answers keep coming meanwhile
        dev.wait_for("saved f ", count=3 + 4 + 2)
        saved = saved_seqs(dev)
        assert held < saved
        site.wait_for(lambda: server_has(site, saved), "every confirmed answer", timeout=90)
        figures = site.get("/api/v1/nps", device=DEVICE)
        assert figures["shown"] == len(saved)  # each once: none lost, none counted twice
        gaps = site.get(f"/api/v1/devices/{DEVICE}/gaps")
        assert gaps["received"] == gaps["max_seq"] and gaps["missing"] == []
    finally:
        site.broker.stop()
