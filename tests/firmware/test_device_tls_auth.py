"""TLS with the broker's certificate checked, and per-device user name and password, against a
Mosquitto that requires both.

A TLS session needs about 17 KB beside the firmware; on the 64-bit unix port the firmware's
own code takes most of a 64 KB heap (docs/firmware.md, Heap), so these run with 128 KB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nps_edge.broker import Broker, BrokerError, free_port, mosquitto_binary, wait_for_port

T0 = 1793000000000
TLS_HEAP = "128k"


def wait_log(dev, text: str, timeout: float = 15.0) -> None:
    """Poll (bounded) the device's console log for text."""
    deadline = time.monotonic() + timeout
    while text not in dev.log_tail(4000):
        assert time.monotonic() < deadline, f"{text!r} not in log: {dev.log_tail()}"
        time.sleep(0.05)


def run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def self_signed_ca(folder: Path, name: str, cn: str) -> None:
    """folder/name.key and folder/name.crt: a CA certificate made with openssl."""
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        "30",
        "-subj",
        f"/CN={cn}",
        cwd=folder,
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, str]]:
    """Mosquitto on a free port: TLS only, no anonymous clients, user dev1 / s3cret."""
    mosquitto = mosquitto_binary()
    openssl = shutil.which("openssl")
    passwd = shutil.which("mosquitto_passwd")
    if not (mosquitto and openssl and passwd):
        message = "mosquitto, mosquitto_passwd and openssl are needed: apt-get install them"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    d = tmp_path / "tls"
    d.mkdir()
    self_signed_ca(d, "ca", "nps-test-ca")
    run(
        openssl,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=d,
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        openssl,
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        cwd=d,
    )
    run(passwd, "-c", "-b", "pw", "dev1", "s3cret", cwd=d)
    port = free_port()
    (d / "m.conf").write_text(
        # As root, stay root: the files live in the test's private temp folder.
        f"user root\nlistener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n"
        f"keyfile {d}/server.key\nallow_anonymous false\npassword_file {d}/pw\n"
        f"log_dest file {d}/mosquitto.log\n"
    )
    proc = subprocess.Popen([mosquitto, "-c", str(d / "m.conf")], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, proc=proc)
    except BrokerError as err:
        proc.kill()
        pytest.fail(f"TLS mosquitto did not start: {err}: {(d / 'mosquitto.log').read_text()}")
    broker = Broker("mosquitto", "127.0.0.1", port, proc, d)
    yield broker, (d / "ca.crt").read_text()
    broker.stop()


@pytest.mark.slow
def test_tls_with_credentials_delivers_and_bad_password_keeps_events(
    devices, config, tls_broker
) -> None:
    broker, ca = tls_broker
    cfg = config(broker, sim={"start_ms": T0})
    cfg["broker"].update(tls=True, ca=ca, username="dev1", password="wrong")
    folder = devices.folder("d", cfg)
    dev = devices.start(folder, TLS_HEAP)
    dev.send(f"at {T0 + 60000}", "press", "turn 1", "turn 4", "press")
    dev.wait_for("saved f 2")  # confirmed on screen although the broker refuses us
    wait_log(dev, "CONNACK refused, return code 5")
    dev.send(f"at {T0 + 120000}", "telemetry")
    dev.wait_for("saved t 3")
    dev.kill()
    assert not [ln for ln in dev.lines if ln.startswith("acked ")]

    cfg["broker"]["password"] = "s3cret"
    (folder / "config.json").write_text(json.dumps(cfg))
    dev = devices.start(folder, TLS_HEAP)
    acked = dev.wait_for("acked ", count=4)  # 2 old + 1 boot telemetry + the refused one's
    events = {int(ln.split()[2]): json.loads(ln.split(" ", 3)[3]) for ln in acked}
    assert events[2]["score"] == 9 and events[2]["boot"] == 0
    assert events[3]["errors"]["mqtt_refused"] >= 1
    wait_log(dev, "connected to 127.0.0.1")


@pytest.mark.slow
def test_tls_refuses_a_broker_signed_by_another_ca(devices, config, tls_broker) -> None:
    broker, _ = tls_broker
    other = broker.workdir / "other"  # type: ignore[operator]
    other.mkdir()
    self_signed_ca(other, "o", "someone-else")
    cfg = config(broker, sim={"start_ms": T0})
    cfg["broker"].update(
        tls=True, ca=(other / "o.crt").read_text(), username="dev1", password="s3cret"
    )
    dev = devices.start(devices.folder("d", cfg), TLS_HEAP)
    dev.send(f"at {T0 + 60000}", "press", "turn 1", "press", "long")  # 5, no reason
    dev.wait_for("saved f 2")
    dev.send("telemetry")
    dev.wait_for("saved t 3")
    wait_log(dev, "The certificate is not correctly signed by the trusted CA")
    dev.kill()
    assert not [ln for ln in dev.lines if ln.startswith("acked ")]
    wait_log(dev, "The certificate is not correctly signed by the trusted CA")
