"""A whole site on one machine: broker, server, gateway, as real child processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from nps_edge.broker import Broker
from nps_edge.processes import (
    Child,
    ProcessError,
    create_token,
    start_gateway,
    start_server,
    wait_until,
)
from tests.conftest import gateway_token as gateway_token_for

GATEWAY_ID = "e2e-gateway"  # the gateway's id is its token's name (issue 12)
SITE = "e2e-site"  # the one site of this gateway and of every test's devices


@dataclass
class Site:
    broker: Broker
    server: Child
    gateway: Child
    operator_token: str
    gateway_token: str
    store: Path
    workdir: Path
    nps_edge: str
    children: list[Child] = field(default_factory=list)

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=str(self.server.url),
            headers={"Authorization": f"Bearer {self.operator_token}"},
            timeout=10,
        )

    def get(self, path: str, **params: Any) -> Any:
        with self.api as client:
            response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll check() until true (bounded); on timeout show the parts' logs."""
        try:
            wait_until(check, timeout, what, interval=0.1)
        except ProcessError as err:
            logs = "\n".join(f"--- {c.name}\n{c.tail()}" for c in (self.server, self.gateway))
            raise AssertionError(f"{err}\n{logs}") from None


@pytest.fixture
def site(mqtt_broker: Broker, tmp_path: Path, nps_edge_bin: str) -> Iterator[Site]:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    operator = create_token(db, "operator", "e2e-operator")
    gateway_token = gateway_token_for(db, name=GATEWAY_ID, site=SITE)
    server = start_server(db, tmp_path / "server.log")
    store = tmp_path / "gateway.db"
    gateway = start_gateway(
        str(server.url),
        gateway_token,
        mqtt_broker.address,
        store,
        tmp_path / "gateway.log",
        extra=("--metrics-port", "0", "--gateway-id", GATEWAY_ID),
    )
    site = Site(
        mqtt_broker, server, gateway, operator, gateway_token, store, tmp_path, nps_edge_bin
    )
    try:
        yield site
    finally:
        gateway.stop()
        site.gateway.stop()  # a test may have started another in its place
        server.stop()
