"""The gateway's own broker login and TLS, against a real Mosquitto configured here with
a password file (mosquitto_passwd), an ACL and a TLS listener (a site CA from broker.certs).

Who can reach it: anyone on the site's network can open a TCP connection to the
broker; these tests make the attacks of issue 12 on the gateway's side of it.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.certs import KeyPair, make_ca, make_server_cert
from gateway.mqtt_socket import BufferedSocket
from gateway.receiver import BrokerLogin
from nps_edge.broker import free_port, mosquitto_binary, terminate, wait_for_port
from nps_edge.processes import wait_until
from tests.gateway.processes import GatewayProcess

GATEWAY_USER, GATEWAY_PASSWORD = "gw-site1", "gw-secret-4d2f9a"
DEVICE_USER, DEVICE_PASSWORD = "nps-a1b2c3", "dev-secret-77e1"


@dataclass
class SecureBroker:
    address: str
    workdir: Path
    proc: subprocess.Popen
    ca: Path | None = None


def write_ca(workdir: Path, site: str) -> tuple[Path, KeyPair]:
    """A site CA from broker.certs (the one `nps-edge broker certs` makes), its cert on disk."""
    ca = make_ca(site, now=datetime.datetime.now(datetime.UTC))
    path = workdir / f"{site}.crt"
    path.write_bytes(ca.cert)
    return path, ca


def write_server_cert(workdir: Path, ca: KeyPair) -> tuple[Path, Path]:
    """The broker's certificate for 127.0.0.1 and localhost, signed by ca."""
    server = make_server_cert(ca, [], now=datetime.datetime.now(datetime.UTC))
    crt, pem = workdir / "server.crt", workdir / "server.key"
    crt.write_bytes(server.cert)
    pem.write_bytes(server.key)
    pem.chmod(0o600)
    return crt, pem


def start_secure_broker(workdir: Path, tls: bool) -> SecureBroker:
    binary = mosquitto_binary()
    passwd_tool = shutil.which("mosquitto_passwd")
    if binary is None or passwd_tool is None:
        pytest.skip("mosquitto and mosquitto_passwd are needed: apt-get install mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    passwd = workdir / "passwd"
    passwd.touch(mode=0o600)
    for user, password in ((GATEWAY_USER, GATEWAY_PASSWORD), (DEVICE_USER, DEVICE_PASSWORD)):
        subprocess.run([passwd_tool, "-b", str(passwd), user, password], check=True)
    acl = workdir / "acl"
    acl.write_text(
        f"user {GATEWAY_USER}\n"
        + "".join(f"topic read nps/v1/+/{k}\n" for k in ("feedback", "telemetry", "status"))
        + "topic write nps/v1/+/cmd\n\n"
        + "pattern write nps/v1/%u/feedback\npattern write nps/v1/%u/telemetry\n"
        + "pattern write nps/v1/%u/status\npattern read nps/v1/%u/cmd\n"
    )
    port = free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "persistence false",
        f"log_dest file {workdir}/mosquitto.log",
        "log_type all",
        "user root",
    ]
    ca = None
    if tls:
        ca, ca_pair = write_ca(workdir, "site-ca")
        crt, key = write_server_cert(workdir, ca_pair)
        lines += [f"cafile {ca}", f"certfile {crt}", f"keyfile {key}"]
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    wait_for_port("127.0.0.1", port, proc=proc)
    return SecureBroker(f"127.0.0.1:{port}", workdir, proc, ca)


@pytest.fixture
def plain_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path_factory.mktemp("auth-broker"), tls=False)
    yield broker
    terminate(broker.proc, 10)


@pytest.fixture
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path_factory.mktemp("tls-broker"), tls=True)
    yield broker
    terminate(broker.proc, 10)


def device_publish(
    broker: SecureBroker, messages: list[tuple[str, bytes]], ca: Path | None = None
) -> None:
    """Publish as the registered device (its own login; client id = username)."""
    host, port = broker.address.rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE_USER)
    client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    if ca:
        client.tls_set(ca_certs=str(ca))
    client.connect(host, int(port))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def gateway_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.getMessage()} {json.dumps(getattr(r, 'fields', {}), default=str)}"
        for r in caplog.records
    )


def test_gateway_with_its_login_receives(plain_broker, run_gateway, fake_server, make, monkeypatch):
    monkeypatch.setenv("NPS_EDGE_BROKER_PASSWORD", GATEWAY_PASSWORD)  # env, never a flag
    run_gateway(plain_broker.address, fake_server.client(), broker_username=GATEWAY_USER)
    device_publish(
        plain_broker,
        [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in (1, 2)],
    )
    wait_until(lambda: len(fake_server.received) == 2, timeout=20, what="events via login")


def test_anonymous_and_wrong_password_are_refused_and_said_once(
    plain_broker, run_gateway, fake_server, caplog
):
    caplog.set_level(logging.INFO, logger="nps_edge")
    gw = run_gateway(
        plain_broker.address,
        fake_server.client(),
        wait=False,
        broker_username=GATEWAY_USER,
        broker_password="wrong-password-31337",
    )
    wait_until(gw.receiver.refused.is_set, timeout=20, what="the broker's refusal")
    # paho retries (1 s, then longer): wait for a second refusal in the broker's log
    log = plain_broker.workdir / "mosquitto.log"
    wait_until(lambda: log.read_text().count("not authorised") >= 2, timeout=30, what="retry")
    text = gateway_log(caplog)
    assert text.count("broker refused the gateway's login") == 1
    assert "check broker_username and broker_password" in text
    assert "wrong-password-31337" not in text and "good" not in text  # no secret logged
    assert not gw.receiver.subscribed.is_set()

    anonymous = run_gateway(plain_broker.address, fake_server.client(), wait=False)
    wait_until(anonymous.receiver.refused.is_set, timeout=20, what="anonymous refused")
    assert not anonymous.receiver.subscribed.is_set()


def test_gateway_over_tls_verifies_the_broker(tls_broker, run_gateway, fake_server, make):
    """Also gateway/mqtt_socket.py over TLS: the SSL socket's want-read reaches paho (as
    BlockingIOError) and its `pending()` is counted (each read takes one TLS record and
    Mosquitto sends one per packet: fewer calls into the SSL layer, not fewer system
    calls); each commit's PUBACKs, one packet, reach the broker (its log, `log_type all`)."""
    gw = run_gateway(
        tls_broker.address,
        fake_server.client(),
        broker_username=GATEWAY_USER,
        broker_password=GATEWAY_PASSWORD,
        broker_tls=True,
        broker_ca=tls_broker.ca,
    )
    assert gw.receiver.connected.is_set()
    sock = gw.receiver.client.socket()
    assert isinstance(sock, BufferedSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
    device_publish(
        tls_broker,
        [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in range(1, 601)],
        ca=tls_broker.ca,
    )
    wait_until(lambda: len(fake_server.received) == 600, timeout=30, what="600 over TLS")
    assert [e["seq"] for e in fake_server.received] == list(range(1, 601))
    pubacks = f"Received PUBACK from {gw.settings.mqtt_client_id} "
    broker_log = tls_broker.workdir / "mosquitto.log"
    wait_until(lambda: broker_log.read_text().count(pubacks) == 600, timeout=20, what="600 PUBACKs")


def test_gateway_refuses_a_broker_not_signed_by_its_ca(
    tls_broker, run_gateway, fake_server, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="nps_edge")
    other_ca, _ = write_ca(tmp_path, f"other-{uuid.uuid4().hex[:6]}")
    gw = run_gateway(
        tls_broker.address,
        fake_server.client(),
        wait=False,
        broker_username=GATEWAY_USER,
        broker_password=GATEWAY_PASSWORD,
        broker_tls=True,
        broker_ca=other_ca,
    )
    wait_until(
        lambda: "broker certificate not trusted" in gateway_log(caplog),
        timeout=30,
        what="the TLS refusal logged",
    )
    assert not gw.receiver.connected.is_set()
    assert GATEWAY_PASSWORD not in gateway_log(caplog)


def test_the_gateway_process_logs_in_from_its_config_file_and_logs_no_secret(
    plain_broker, tmp_path, make
):
    down = f"http://127.0.0.1:{free_port()}"  # no server: the events stay in the store
    gw = GatewayProcess(
        tmp_path / "gw",
        plain_broker.address,
        down,
        "npsg_token_never_logged",
        settings={"broker_username": GATEWAY_USER, "broker_password": GATEWAY_PASSWORD},
    )
    gw.start()  # returns once subscribed: the login from gateway.toml worked
    try:
        device_publish(
            plain_broker,
            [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in (1, 2)],
        )
        wait_until(lambda: gw.status()["depth"] == 2, timeout=30, what="both stored")
    finally:
        gw.stop()
    log = gw.log.read_text()
    assert '"broker_username": "gw-site1"' in log
    assert GATEWAY_PASSWORD not in log and "npsg_token_never_logged" not in log


def test_broker_login_repr_leaves_the_password_out():
    login = BrokerLogin(username=GATEWAY_USER, password=GATEWAY_PASSWORD, tls=True)
    assert GATEWAY_PASSWORD not in repr(login) and GATEWAY_USER in repr(login)
