"""Gateway to server over HTTPS with verification on (issue 12, "Encryption").

A real server (the app under uvicorn, TLS with a certificate for 127.0.0.1 signed
by a CA made here with broker/certs.py), the real `nps-edge gateway` process and a
real Mosquitto: the token and the events only leave the gateway for a server it
has verified, and a failed verification keeps every event in the store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from broker.certs import make_ca, make_server_cert
from gateway.config import GatewaySettings, token_in_clear
from gateway.service import ConfigError, Gateway
from nps_edge.broker import free_port, terminate
from nps_edge.cli import app
from nps_edge.processes import gateway_status, wait_until
from tests.gateway.processes import GatewayProcess, ServerProcess
from tests.gateway.test_end_to_end import stream

runner = CliRunner()


@dataclass
class HttpsServer:
    """The server app under uvicorn with TLS; tokens from `nps-edge token create`."""

    tokens: ServerProcess
    port: int
    ca: Path
    proc: subprocess.Popen

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"

    def received(self, device: str) -> int:
        """How many of a device's events the server holds (0 before the first)."""
        response = httpx.get(
            f"{self.url()}/api/v1/devices/{device}/gaps",
            headers={"Authorization": f"Bearer {self.tokens.operator_token}"},
            verify=ssl.create_default_context(cafile=self.ca),
            timeout=10,
        )
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        return int(response.json()["received"])


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    workdir = tmp_path_factory.mktemp("https-server")
    now = dt.datetime.now(dt.UTC)
    ca = make_ca("tls-test", now=now)
    # Only 127.0.0.1: reached as `localhost`, the same server is "another name".
    cert = make_server_cert(ca, ["127.0.0.1"], now=now, include_defaults=False)
    (workdir / "ca.crt").write_bytes(ca.cert)
    (workdir / "server.crt").write_bytes(cert.cert)
    (workdir / "server.key").write_bytes(cert.key)
    tokens = ServerProcess(workdir)
    tokens.create_tokens()  # also migrates the database
    port = free_port()
    log = (workdir / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server.app:app_from_env", "--factory"]
        + ["--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"]
        + ["--ssl-certfile", str(workdir / "server.crt")]
        + ["--ssl-keyfile", str(workdir / "server.key")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={"NPS_EDGE_DB": tokens.db, "PATH": "/usr/bin:/bin"},
    )
    log.close()
    server = HttpsServer(tokens, port, workdir / "ca.crt", proc)
    verify = ssl.create_default_context(cafile=server.ca)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError((workdir / "server.log").read_text()[-3000:])
        try:
            return httpx.get(f"{server.url()}/healthz", verify=verify, timeout=1).is_success
        except httpx.TransportError:
            return False

    wait_until(up, timeout=60, what="the HTTPS server")
    yield server
    terminate(proc, 15)


@pytest.fixture
def gateway(tmp_path: Path, mqtt_broker: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # "Without server_ca" means httpx's default bundle, not one named by the environment.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    made: list[GatewayProcess] = []

    def make(server: HttpsServer, url: str, site: str, **settings: Any) -> GatewayProcess:
        gw = GatewayProcess(
            tmp_path / f"gateway{len(made)}",
            mqtt_broker.address,
            url,
            server.tokens.token_for(site),
            settings={"retry_max_s": 1.0} | settings,
            metrics_port=free_port(),
        )
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """`nps-edge gateway` configures the nps_edge loggers; give them back afterwards."""
    logger = logging.getLogger("nps_edge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def tls_attempts(gw: GatewayProcess) -> float:
    """`nps_gateway_forward_errors_total{cause="tls"}` from the gateway's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('nps_gateway_forward_errors_total{cause="tls"}'):
            return float(line.split()[-1])
    return 0.0


def log_lines(gw: GatewayProcess) -> list[dict[str, Any]]:
    lines = gw.log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def assert_refused_and_kept(server: HttpsServer, gw: GatewayProcess, devices: list[str]) -> dict:
    """Several TLS failures, one log line saying `tls`, nothing sent, nothing lost."""
    wait_until(lambda: tls_attempts(gw) >= 3, timeout=60, what="three TLS failures")
    tls_logs = [e for e in log_lines(gw) if e.get("cause") == "tls"]
    assert len(tls_logs) == 1, tls_logs  # once per change of state, not per attempt
    assert tls_logs[0]["level"] == "error" and "server_ca" in tls_logs[0]["what_to_do"]
    status = gateway_status(gw.store)
    assert (status["depth"], status["forwarded"]) == (len(devices) * 5, 0)
    assert [server.received(d) for d in devices] == [0] * len(devices)
    assert gw.proc is not None and gw.proc.poll() is None
    return tls_logs[0]


def test_with_server_ca_the_events_arrive_over_https(https_server, gateway, mqtt_broker, make):
    devices = ["nps-tlsok000", "nps-tlsok001"]
    gw = gateway(https_server, https_server.url(), "nps-tlsok", server_ca=str(https_server.ca))
    gw.start()
    make.publish(mqtt_broker.address, stream(devices, 5))
    wait_until(
        lambda: [https_server.received(d) for d in devices] == [5, 5],
        timeout=60,
        what="the events at the server",
    )
    wait_until(lambda: gateway_status(gw.store)["depth"] == 0, timeout=30, what="empty store")
    assert tls_attempts(gw) == 0


def test_without_server_ca_the_events_stay_in_the_store_and_the_log_says_tls(
    https_server, gateway, mqtt_broker, make
):
    devices = ["nps-tlsno000", "nps-tlsno001"]
    gw = gateway(https_server, https_server.url(), "nps-tlsno")  # httpx's bundle only
    gw.start()
    make.publish(mqtt_broker.address, stream(devices, 5))
    logged = assert_refused_and_kept(https_server, gw, devices)
    assert "not trusted" in logged["detail"] and "issuer" in logged["detail"]
    # Nothing was lost: with the CA the same store drains to the server.
    gw.stop()
    gw.settings["server_ca"] = str(https_server.ca)
    gw.start()
    wait_until(
        lambda: [https_server.received(d) for d in devices] == [5, 5],
        timeout=60,
        what="the kept events at the server",
    )


def test_a_server_certificate_for_another_name_is_refused(https_server, gateway, mqtt_broker, make):
    devices = ["nps-tlsname000"]
    # The certificate names 127.0.0.1 only; the same server reached as localhost.
    url = https_server.url("localhost")
    gw = gateway(https_server, url, "nps-tlsname", server_ca=str(https_server.ca))
    gw.start()
    make.publish(mqtt_broker.address, stream(devices, 5))
    logged = assert_refused_and_kept(https_server, gw, devices)
    assert "mismatch" in logged["detail"] and "localhost" in logged["detail"]


@pytest.mark.parametrize(
    ("ca_text", "said"),
    [(None, "No such file"), ("not a certificate\n", "cannot use server_ca")],
)
def test_a_missing_or_bad_server_ca_stops_the_start(tmp_path, ca_text, said, keep_logging):
    ca = tmp_path / "ca.crt"
    if ca_text is not None:
        ca.write_text(ca_text)
    args = ["gateway", "--server", "https://127.0.0.1:9", "--token", "t", "--store"]
    args += [str(tmp_path / "g.db"), "--broker", "127.0.0.1:9", "--metrics-port", "0"]
    result = runner.invoke(app, [*args, "--server-ca", str(ca)])
    assert result.exit_code == 1, result.output
    assert "cannot use server_ca" in result.output and said in result.output
    assert not (tmp_path / "g.db").exists()  # refused before the store was opened


def test_plain_http_to_another_host_is_refused_at_start(tmp_path, monkeypatch, keep_logging):
    monkeypatch.delenv("NPS_EDGE_ALLOW_PLAIN_HTTP", raising=False)
    args = ["gateway", "--server", "http://192.0.2.10:8000", "--token", "t", "--store"]
    args += [str(tmp_path / "g.db"), "--broker", "127.0.0.1:9", "--metrics-port", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "token would travel in clear" in result.output
    assert "allow_plain_http" in result.output


def test_plain_http_is_fine_on_this_host_only():
    for url in ("http://127.0.0.1:8000", "http://127.3.2.1", "http://localhost:80", "http://[::1]"):
        assert not token_in_clear(url), url
    for url in ("http://192.168.1.5", "http://nps.example.com", "http://localhost.evil.example"):
        assert token_in_clear(url), url
    assert not token_in_clear("https://nps.example.com")


def test_allow_plain_http_starts_and_warns_at_each_start(tmp_path, shared_broker, caplog):
    caplog.set_level(logging.INFO, logger="nps_edge")
    values: dict[str, Any] = {
        "server": "http://192.0.2.10:8000",  # TEST-NET-1: a host that is not this one
        "token": "t",
        "broker": shared_broker.address,
        "store": tmp_path / "g.db",
        "client_id": f"gw-plain-{tmp_path.name}",
        "metrics_port": 0,
        "request_timeout": 1.0,
    }
    with pytest.raises(ConfigError, match="in clear"):
        Gateway(GatewaySettings(**values))
    for start in (1, 2):
        gw = Gateway(GatewaySettings(**values, allow_plain_http=True))
        thread = threading.Thread(target=gw.run, name="gateway")
        thread.start()
        try:
            wait_until(gw.receiver.subscribed.is_set, timeout=20, what="gateway subscribed")
        finally:
            gw.stop()
            thread.join(timeout=30)
        warnings = [r for r in caplog.records if "travel in clear" in r.getMessage()]
        assert len(warnings) == start and warnings[-1].levelno == logging.WARNING
