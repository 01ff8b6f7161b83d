"""The real firmware through the locked-down site broker: TLS with the site CA checked and its
registry login, against Mosquitto run from `nps-edge broker certs` + `broker config --tls`.

The device's events are seen by a subscriber holding the gateway's login, so they passed the
ACL, not only the broker's PUBACK (Mosquitto acknowledges a refused publish too).
Heap (docs/firmware.md, Heap): the code runs from its ROM image, so the TLS session fits
beside the firmware's state in the 64 KB heap (with the code loaded into the heap it needed
68k, 72k with an RSA CA).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.certs import make_ca
from nps_edge.site_broker import reload
from server.db.engine import make_engine, upgrade
from tests.broker.site import Mqtt, Site, needs_mosquitto

T0 = 1793000000000
TLS_HEAP = "64k"
DEVICE = "nps-a1b2c3"
SITE = "store-1"  # the site of tests/firmware/conftest.py's config_for


def wait_log(dev, text: str, timeout: float = 15.0) -> None:
    """Poll (bounded) the device's console log for text."""
    deadline = time.monotonic() + timeout
    while text not in dev.log_tail(4000):
        assert time.monotonic() < deadline, f"{text!r} not in log: {dev.log_tail()}"
        time.sleep(0.05)


@pytest.fixture
def site() -> Iterator[Site]:
    """Site store-1 with DEVICE registered, its TLS broker started from the generated files."""
    needs_mosquitto()
    root = Path(tempfile.mkdtemp(prefix="nps-fw-tls-"))
    root.chmod(0o711)  # the broker, once it is the `mosquitto` user, must reach its files
    db = f"sqlite:///{root / 'server.db'}"
    engine = make_engine(db)
    upgrade(engine)
    engine.dispose()
    s = Site(root, name=SITE, db=db)
    s.add(DEVICE)
    s.make_certs()
    s.start("--tls", "--certs", str(s.certs))
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def gateway_reader(site: Site) -> Mqtt:
    gateway = site.gateway(ca=site.certs / "ca.crt").connected()
    gateway.subscribe("nps/v1/+/feedback", "nps/v1/+/telemetry", "nps/v1/+/status")
    return gateway


def device_config(config, site: Site, **broker: object) -> dict:
    cfg = config(site.broker, DEVICE, sim={"start_ms": T0})
    cfg["broker"].update(
        tls=True,
        ca=(site.certs / "ca.crt").read_text(),
        username=DEVICE,
        password=site.passwords[DEVICE],
    )
    cfg["broker"].update(broker)
    return cfg


@pytest.mark.slow
def test_registry_login_over_tls_delivers_and_a_bad_password_keeps_events(
    devices, config, site: Site
) -> None:
    gateway = gateway_reader(site)
    cfg = device_config(config, site, password="wrong")
    folder = devices.folder("d", cfg)
    dev = devices.start(folder, TLS_HEAP)
    dev.send(f"at {T0 + 60000}", "press", "turn 1", "turn 4", "press")
    dev.wait_for("saved f 2")  # confirmed on screen although the broker refuses us
    wait_log(dev, "CONNACK refused, return code 5")
    dev.send(f"at {T0 + 120000}", "telemetry")
    dev.wait_for("saved t 3")
    dev.kill()
    assert not [ln for ln in dev.lines if ln.startswith("acked ")]

    (folder / "config.json").write_text(json.dumps(device_config(config, site)))
    dev = devices.start(folder, TLS_HEAP)
    acked = dev.wait_for("acked ", count=4)  # 2 old + 1 boot telemetry + the refused one's
    events = {int(ln.split()[2]): json.loads(ln.split(" ", 3)[3]) for ln in acked}
    assert events[2]["score"] == 9 and events[2]["boot"] == 0
    assert events[3]["errors"]["mqtt_refused"] >= 1
    wait_log(dev, "connected to 127.0.0.1")

    def seen() -> dict[str, str]:
        return {json.loads(p).get("id", t): t for t, p in list(gateway.messages)}

    gateway.wait(lambda: "nps-a1b2c3:2" in seen(), "the answer did not reach the gateway", 20)
    assert seen()["nps-a1b2c3:2"] == "nps/v1/nps-a1b2c3/feedback"
    assert json.loads(dict(gateway.messages)["nps/v1/nps-a1b2c3/status"])["online"] is True
    dev.send("telemetry")  # with the TLS session up
    telemetry = json.loads(dev.wait_for("acked t 5")[0].split(" ", 3)[3])
    assert 0 < telemetry["heap_min"] <= telemetry["heap_free"], telemetry
    print("heap over TLS at", TLS_HEAP, telemetry["heap_free"], telemetry["heap_min"])


@pytest.mark.slow
def test_a_revoked_device_keeps_its_events_on_flash(devices, config, site: Site) -> None:
    site.revoke(DEVICE)
    site.configure()
    reload(site.broker)  # type: ignore[arg-type]
    dev = devices.start(devices.folder("d", device_config(config, site)), TLS_HEAP)
    dev.send(f"at {T0 + 60000}", "press", "turn 1", "press", "long")
    dev.wait_for("saved f 2")
    wait_log(dev, "CONNACK refused, return code 5")
    dev.kill()
    assert not [ln for ln in dev.lines if ln.startswith("acked ")]


@pytest.mark.slow
def test_tls_refuses_a_broker_signed_by_another_ca(devices, config, site: Site) -> None:
    other = make_ca("someone-else", now=dt.datetime.now(dt.UTC)).cert.decode()
    dev = devices.start(devices.folder("d", device_config(config, site, ca=other)), TLS_HEAP)
    dev.send(f"at {T0 + 60000}", "press", "turn 1", "press", "long")  # 5, no reason
    dev.wait_for("saved f 2")
    dev.send("telemetry")
    dev.wait_for("saved t 3")
    wait_log(dev, "The certificate is not correctly signed by the trusted CA")
    dev.kill()
    assert not [ln for ln in dev.lines if ln.startswith("acked ")]
