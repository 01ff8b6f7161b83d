"""A locked-down site end to end, as docs/broker.md sets it up: one server database holds the
registry and the tokens; `nps-edge broker certs` + `broker config --tls` make the broker;
`nps-edge gateway --config DIR/gateway.toml` logs in with the generated login over TLS.

A registered device's answer reaches the server; what it forges in another device's name
does not; a revoked device's answers stop at the broker once config is rerun and reloaded.
"""

from __future__ import annotations

import json

import httpx
import pytest

from nps_edge.broker import free_port
from nps_edge.processes import (
    create_token,
    spawn,
    start_server,
    subscriptions,
    wait_child,
    wait_until,
)
from nps_edge.site_broker import reload
from tests.broker.site import Site
from tests.conftest import gateway_token

pytestmark = pytest.mark.slow


def feedback(device: str, seq: int, score: int) -> bytes:
    event = {
        "v": 1,
        "id": f"{device}:{seq}",
        "device": device,
        "site": "site-x",
        "seq": seq,
        "boot": 1,
        "up_ms": 1000 + seq,
        "ts": 1795000000.0 + seq,
        "fw": "1.0.0",
        "type": "feedback",
        "outcome": "answered",
        "score": score,
        "prompt": "nps",
        "trigger": {"kind": "walkup", "ref": None},
        "reason": None,
        "answer_ms": 2000,
        "ctx": {"rssi": -60, "battery_mv": 3900},
    }
    return json.dumps(event).encode()


def test_device_to_server_through_the_generated_tls_broker(site: Site) -> None:
    logs = site.root / "logs"
    server = start_server(site.db, logs / "server.log", port=free_port())
    assert server.url is not None  # narrows the type: start_server sets it
    token_file = site.root / "token"
    token_file.write_text(gateway_token(site.db, name="gw-site-x", site="site-x") + "\n")
    token_file.chmod(0o600)
    operator = create_token(site.db, "operator", "op")  # people's tokens: any site
    site.make_certs()
    broker = site.start("--tls", "--certs", str(site.certs))
    gateway_log = logs / "gateway.log"
    gateway = spawn(
        "gateway",
        ["gateway", "--config", str(site.out / "gateway.toml"), "--server", server.url]
        + ["--store", str(site.root / "gateway.db"), "--metrics-port", "0"],
        gateway_log,
        env={"NPS_EDGE_TOKEN_FILE": str(token_file)},
    )
    try:
        wait_child(gateway, lambda: subscriptions(gateway_log) > 0, "the gateway's subscription")
        ca = site.certs / "ca.crt"
        a = site.device("dev-a", ca=ca).connected()
        a.publish("nps/v1/dev-a/feedback", feedback("dev-a", 1, 9))
        a.publish("nps/v1/dev-b/feedback", feedback("dev-b", 1, 0))  # forged: dropped
        a.publish("nps/v1/dev-a/feedback", feedback("dev-a", 2, 10))

        def devices() -> dict[str, int]:
            rows = httpx.get(
                f"{server.url}/api/v1/devices",
                headers={"Authorization": f"Bearer {operator}"},
                timeout=10,
            ).json()
            return {row["device"]: row["n"] for row in rows}

        wait_until(lambda: devices().get("dev-a") == 2, 60, "dev-a's two answers at the server")
        assert "dev-b" not in devices()

        site.revoke("dev-a")
        site.configure()
        reload(broker)
        a.wait(lambda: bool(a.disconnects), "the revoked device is still connected")
        assert site.device("dev-a", ca=ca).answer().is_failure
        b = site.device("dev-b", ca=ca).connected()  # the others carry on, gateway included
        b.publish("nps/v1/dev-b/feedback", feedback("dev-b", 1, 7))
        wait_until(lambda: devices().get("dev-b") == 1, 60, "dev-b's answer after the reload")
        assert gateway.alive()
    finally:
        gateway.stop()
        server.stop()
