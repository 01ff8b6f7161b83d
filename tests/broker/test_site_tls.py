"""MQTT over TLS with `nps-edge broker certs` + `nps-edge broker config --tls`, real Mosquitto.

Who reaches the TLS listener: anyone on the network; they must not be able to read or
pose as the broker, and a client that skips TLS gets no MQTT session at all.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tomllib
from pathlib import Path

import pytest

from broker.certs import make_ca
from tests.broker.site import Mqtt, Site

pytestmark = pytest.mark.slow

# MQTT 3.1.1 section 3.1: CONNECT, protocol "MQTT" level 4, clean session, keepalive 30,
# client id "x", no login.
PLAIN_CONNECT = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 1]) + b"x"


@pytest.fixture
def tls_site(site: Site) -> Site:
    site.make_certs("broker.site-x.example")
    site.start("--tls", "--certs", str(site.certs))
    return site


def test_a_client_checking_the_site_ca_logs_in_by_address_and_by_name(tls_site: Site) -> None:
    ca = tls_site.certs / "ca.crt"
    gateway = tls_site.gateway(ca=ca).connected()
    gateway.subscribe("nps/v1/+/feedback")
    device = tls_site.device("dev-a", ca=ca, server_name="localhost").connected()
    device.publish("nps/v1/dev-a/feedback", b"over-tls")
    gateway.wait_message(b"over-tls")
    assert tls_site.device("dev-b", "wrong", ca=ca).answer().is_failure  # logins still apply


def test_gateway_toml_points_the_gateway_at_the_tls_listener(tls_site: Site) -> None:
    settings = tomllib.loads((tls_site.out / "gateway.toml").read_text())
    assert settings["broker_tls"] is True
    assert settings["broker"] == f"127.0.0.1:{tls_site.broker.port}"  # type: ignore[union-attr]
    assert settings["gateway_id"] == settings["broker_username"] == "gw-site-x"
    assert settings["broker_ca"] == str(tls_site.certs / "ca.crt")
    client = Mqtt(
        tls_site.broker,  # type: ignore[arg-type]
        username=settings["broker_username"],
        password=settings["broker_password"],
        ca=Path(settings["broker_ca"]),
    )
    tls_site.clients.append(client)
    client.connected()


def test_a_client_trusting_another_ca_refuses_the_broker(tls_site: Site) -> None:
    other = tls_site.root / "other-ca.crt"
    other.write_bytes(make_ca("site-y", now=dt.datetime.now(dt.UTC)).cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_site.device("dev-a", ca=other)


def test_the_certificate_names_only_what_was_asked(tls_site: Site) -> None:
    context = ssl.create_default_context(cafile=str(tls_site.certs / "ca.crt"))
    port = tls_site.broker.port  # type: ignore[union-attr]
    for name in ("127.0.0.1", "localhost", "broker.site-x.example"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            context.wrap_socket(raw, server_hostname="evil.example")


def test_plain_mqtt_to_the_tls_listener_gets_no_session(tls_site: Site) -> None:
    port = tls_site.broker.port  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(PLAIN_CONNECT)
        try:
            answer = raw.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20")  # no CONNACK (MQTT 3.1.1 section 3.2)
    plain = tls_site.device("dev-a")  # paho without TLS, right password
    plain.wait(lambda: bool(plain.disconnects or plain.connack), "no answer")
    assert plain.connack == []
