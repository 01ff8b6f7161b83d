"""Real processes for the gateway's proofs and benchmark, on top of nps_edge.processes.

`nps-edge server` with its tokens, `nps-edge gateway` configured through a
TOML file (the settings an operator would write), and a fast QoS 1 publisher.
Imported by tests/gateway/test_end_to_end.py and bench/gateway_throughput.py,
so the benchmark runs exactly what the tests prove.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import free_port
from nps_edge.processes import (
    Child,
    create_token,
    gateway_status,
    start_gateway,
    start_server,
)
from tests.conftest import gateway_token

GATEWAY_ID = "gw-e2e"  # the gateways' name, and so their tokens' (issue 12)
SITE = "e2e-site"


@dataclass
class ServerProcess:
    """`nps-edge server` on SQLite (or the database `db_url` names) with a gateway and an
    operator token; `workers` worker processes (the server's default when None)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    db_url: str | None = None
    workers: int | None = None
    child: Child | None = None
    gateway_token: str = ""  # gateway GATEWAY_ID of site SITE
    operator_token: str = ""
    site_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> str:
        return self.db_url or f"sqlite:///{self.workdir / 'server.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.child.proc if self.child else None

    def create_tokens(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.gateway_token = self.token_for(SITE)
        self.operator_token = create_token(self.db, "operator", "op")

    def token_for(self, site: str) -> str:
        """The token of gateway GATEWAY_ID at `site` (a gateway token belongs to one site)."""
        if site not in self.site_tokens:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.site_tokens[site] = gateway_token(self.db, name=GATEWAY_ID, site=site)
        return self.site_tokens[site]

    def start(self) -> None:
        if not self.gateway_token:
            self.create_tokens()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.child = start_server(
            self.db, self.workdir / "server.log", port=self.port, workers=self.workers
        )

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        response = httpx.get(self.url + path, params=params, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()


@dataclass
class GatewayProcess:
    """`nps-edge gateway` as an operator runs it: contract flags plus a TOML config file."""

    workdir: Path
    broker: str
    server: str
    token: str
    settings: dict[str, Any] = field(default_factory=dict)
    metrics_port: int = 0
    child: Child | None = None
    client_id: str = field(default_factory=lambda: f"gw-{uuid.uuid4().hex[:8]}")

    @property
    def store(self) -> Path:
        return self.workdir / "gateway.db"

    @property
    def log(self) -> Path:
        return self.workdir / "gateway.log"

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.child.proc if self.child else None

    def start(self) -> None:
        """Start; returns once it has (re)subscribed on the broker."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "gateway.toml"
        values = {"client_id": self.client_id, "gateway_id": GATEWAY_ID} | self.settings
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        extra = ("--metrics-port", str(self.metrics_port), "--config", str(config))
        self.child = start_gateway(
            self.server, self.token, self.broker, self.store, self.log, extra
        )

    def kill(self) -> None:
        if self.child:
            self.child.kill()

    def stop(self) -> None:
        if self.child:
            self.child.stop(timeout=30)

    def status(self) -> dict[str, Any]:
        return gateway_status(self.store)


class Publisher:
    """Devices' side: QoS 1 publishes, a wide in-flight window, waits for every PUBACK."""

    def __init__(self, address: str, inflight: int = 1000) -> None:
        host, port = address.rsplit(":", 1)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, int(port))
        self.client.loop_start()

    def publish(self, messages: Iterable[tuple[str, bytes]], retain: bool = False) -> int:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=60)
            if not info.is_published():
                raise AssertionError(f"publish {info.mid} not acknowledged by the broker")
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
