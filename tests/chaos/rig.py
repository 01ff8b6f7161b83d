"""The whole system as real processes (the faults done to it: tests/chaos/faults.py).

The server on PostgreSQL with two workers; per site a Mosquitto from
`nps-edge broker config` (device logins and ACL), its gateway (`nps-edge gateway --config`)
and its devices; every part started as an operator would (nps_edge.processes,
tests/broker/site.py). With `Network` (tests/chaos/netns.py) the devices and gateways run
in namespaces whose links can be cut; without it everything is on 127.0.0.1.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from firmware.sim.plans import device_id
from gateway.store import Stats, Store
from nps_edge.broker import free_port
from nps_edge.processes import Child, create_token, start_gateway, start_server
from nps_edge.site_broker import start_site_broker
from server.db.engine import make_engine, upgrade
from tests.broker.site import Site
from tests.chaos import schedule as sc
from tests.chaos.fleet import FleetDevice
from tests.chaos.netns import Network
from tests.conftest import gateway_token

WORKERS = 2
# A server with two workers imports the app three times: 6-8 s on an idle 2-core box,
# 43 s measured on one shared by 7 engineers (load average 17).
SERVER_START_S = 180.0
FILL_PER_FILLER = 2000  # under the gateway's per-device burst of 3,000 (gateway/policy.py)


@dataclass
class SiteRig:
    index: int
    site: Site  # registry, generated broker files, running broker
    port: int
    token: str
    store: Path
    log: Path
    gateway: Child | None = None
    fillers: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.site.name

    def stats(self) -> Stats:
        """The gateway's store counters, read as `nps-edge gateway status` reads them."""
        store = Store(self.store, readonly=True)
        try:
            return store.stats()
        finally:
            store.close()


@dataclass
class Rig:
    settings: sc.Settings
    root: Path  # logs and device output, kept by pytest
    sites_root: Path  # site folders the `mosquitto` user can enter (0711)
    db: str
    net: Network | None
    t0: float = field(default_factory=time.monotonic)
    server: Child | None = None
    server_port: int = 0
    operator: str = ""
    sites: list[SiteRig] = field(default_factory=list)
    devices: list[FleetDevice] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, what
    filler_acked: dict[str, int] = field(default_factory=dict)  # filler -> telemetry PUBACKed
    phases: dict[str, float] = field(default_factory=dict)  # seconds each step took
    schedule: list[sc.Fault] = field(init=False)

    def __post_init__(self) -> None:
        self.schedule = sc.make_schedule(self.settings, network=self.net is not None)

    # -- addresses ------------------------------------------------------------

    @property
    def broker_ip(self) -> str:
        return self.net.broker_ip if self.net else "127.0.0.1"

    @property
    def server_ip(self) -> str:
        return self.net.server_ip if self.net else "127.0.0.1"

    @property
    def server_url(self) -> str:
        return f"http://{self.server_ip}:{self.server_port}"

    def now(self) -> float:
        return time.monotonic() - self.t0

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server_url,
            headers={"Authorization": f"Bearer {self.operator}"},
            timeout=30,
        )

    # -- starting -------------------------------------------------------------

    def start_server(self) -> None:
        self.server = start_server(
            self.db,
            self.root / "logs" / "server.log",
            self.server_port,
            self.server_ip,
            WORKERS,
            SERVER_START_S,
        )

    def build(self, code: Path, micropython: str, flash: Path) -> None:
        """The registry and the server side by side (each `nps-edge` command costs seconds of
        imports), then per site broker and gateway, then the devices."""
        engine = make_engine(self.db)
        upgrade(engine)  # once here, so that the registry need not wait for the server
        engine.dispose()
        self.server_port = free_port(self.server_ip)
        names = [device_id(self.settings.seed, i) for i in range(self.settings.devices)]
        with ThreadPoolExecutor(max_workers=2 + sc.SITES) as pool:
            server = pool.submit(self.start_server)
            operator = pool.submit(create_token, self.db, "operator", "chaos-operator")
            sites = [pool.submit(self._site, i, names[i :: sc.SITES]) for i in range(sc.SITES)]
            self.sites = [s.result() for s in sites]
            self.operator = operator.result()
            server.result()
        self.phase("server and registry")
        for rig in self.sites:
            self.start_broker(rig)
            self.start_gateway(rig)
        self.phase("brokers and gateways")
        for i, dev in enumerate(names):
            rig = self.sites[i % sc.SITES]
            mp = self.net.wrapper(f"dev{rig.index}", micropython) if self.net else micropython
            self.devices.append(
                FleetDevice(
                    device=dev,
                    site=rig.name,
                    password=rig.site.passwords[dev],
                    broker=(self.broker_ip, rig.port),
                    folder=flash / dev,
                    out=self.root / "devices" / f"{dev}.out",
                    code=code,
                    micropython=mp,
                    seed=self.settings.seed,
                    t0=self.t0,
                )
            )
        for device in self.devices:
            device.start()
        self.phase("devices")

    def _site(self, index: int, devices: list[str]) -> SiteRig:
        """A site's registry entries, gateway token and generated broker files."""
        site = Site(self.sites_root / f"site-{index}", name=f"chaos-{'ab'[index]}", db=self.db)
        rig = SiteRig(
            index,
            site,
            free_port(self.broker_ip),
            gateway_token(self.db, name=f"gw-{site.name}", site=site.name),
            self.root / f"gateway-{index}.db",
            self.root / "logs" / f"gateway-{index}.log",
        )
        if index == sc.FILLED_SITE:
            fills = sum(f.kind == sc.STORE_FILL for f in self.schedule)
            per_fill = math.ceil((self.settings.store_limit + 500) / FILL_PER_FILLER)
            rig.fillers = [f"chaos-fill-{k}" for k in range(fills * per_fill)]
        for dev in [*devices, *rig.fillers]:
            site.add(dev)
        site.configure("--host", self.broker_ip, port=rig.port)
        return rig

    def phase(self, name: str) -> None:
        """Note how long the step since the last note took (the summary shows them)."""
        self.phases[name] = round(self.now() - sum(self.phases.values()), 1)

    def start_broker(self, rig: SiteRig) -> None:
        rig.site.broker = start_site_broker(rig.site.out, port=rig.port, host=self.broker_ip)

    def start_gateway(self, rig: SiteRig) -> None:
        env = {"NPS_EDGE_ALLOW_PLAIN_HTTP": "true"}  # a private link of the test's own
        if rig.index == sc.FILLED_SITE:
            env["NPS_EDGE_MAX_EVENTS"] = str(self.settings.store_limit)
        rig.gateway = start_gateway(
            self.server_url,
            rig.token,
            f"{self.broker_ip}:{rig.port}",
            rig.store,
            rig.log,
            ("--config", str(rig.site.out / "gateway.toml"), "--metrics-port", "0"),
            name=f"gateway-{rig.name}",
            env=env,
            prefix=self.net.prefix(f"gw{rig.index}") if self.net else (),
        )

    def workers(self) -> list[int]:
        """The server's uvicorn worker processes (spawned children of its supervisor)."""
        assert self.server is not None
        pid = self.server.proc.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        found = []
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
        return found

    # -- the end --------------------------------------------------------------

    def close(self) -> None:
        """Stop every process (idempotent), devices first."""
        for device in self.devices:
            device.close()
        for rig in self.sites:
            if rig.gateway is not None:
                rig.gateway.stop()
            rig.site.close()
        if self.server is not None:
            for pid in self.workers():
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.server.stop()
