"""The whole system as real processes, and the faults done to it.

The server on PostgreSQL with two workers; per site a Mosquitto from
`nps-edge broker config` (device logins and ACL), its gateway (`nps-edge gateway --config`)
and its devices; every part started as an operator would (nps_edge.processes,
tests/broker/site.py). With `Network` (tests/chaos/netns.py) the devices and gateways run
in namespaces whose links can be cut; without it everything is on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from firmware.sim.plans import device_id
from gateway.store import Stats, Store
from nps_edge.broker import free_port
from nps_edge.processes import Child, answers, create_token, start_gateway, start_server, wait_until
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

    # -- faults ---------------------------------------------------------------

    def inject(self, fault: sc.Fault) -> None:
        """Do one fault and undo it (restart, restore) before returning."""
        start = self.now()
        action: Callable[[sc.Fault], str] = getattr(self, f"_{fault.kind}")
        what = action(fault)
        self.injected[fault.kind] += 1
        self.timeline.append((start, self.now(), f"{fault.kind}: {what}"))

    def _hold(self, fault: sc.Fault) -> None:
        time.sleep(fault.hold_s)  # the fault's length is the schedule's, not a wait for state

    def _device_kill(self, fault: sc.Fault) -> str:
        device = self.devices[fault.target]
        device.kill()
        self._hold(fault)
        device.start()
        return device.device

    def _gateway_kill(self, fault: sc.Fault) -> str:
        rig = self.sites[fault.target]
        assert rig.gateway is not None
        rig.gateway.kill()
        self._hold(fault)
        self.start_gateway(rig)
        return rig.name

    def _broker(self, fault: sc.Fault, stop: Callable[[], None]) -> str:
        rig = self.sites[fault.target]
        stop()
        self._hold(fault)
        self.start_broker(rig)
        return rig.name

    def _broker_kill(self, fault: sc.Fault) -> str:
        broker = self.sites[fault.target].site.broker
        assert broker is not None
        return self._broker(fault, broker.kill)

    def _broker_restart(self, fault: sc.Fault) -> str:
        broker = self.sites[fault.target].site.broker
        assert broker is not None
        return self._broker(fault, broker.stop)

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

    def _healthy(self) -> bool:
        return answers(f"{self.server_url}/healthz")

    def _worker_kill(self, fault: sc.Fault) -> str:
        before = wait_until(lambda: len(w := self.workers()) == WORKERS and w, 60, "2 workers")
        victim = before[fault.target % len(before)]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(w := self.workers()) == WORKERS and victim not in w and self._healthy(),
            120,
            "uvicorn to replace the killed worker",
        )
        return f"pid {victim}"

    def _server_kill(self, fault: sc.Fault) -> str:
        assert self.server is not None
        for pid in [*self.workers(), self.server.proc.pid]:  # the host lost power
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.server.proc.wait()
        self._hold(fault)
        self.start_server()
        return "server and workers"

    def _server_stop(self, fault: sc.Fault) -> str:
        assert self.server is not None
        self.server.stop()
        self._hold(fault)
        self.start_server()
        return f"down {fault.hold_s:.0f}s"

    def _cut(self, link: str, fault: sc.Fault) -> str:
        assert self.net is not None
        self.net.links[link].cut()
        try:
            self._hold(fault)
        finally:
            self.net.links[link].restore()
        return link

    def _cut_uplink(self, fault: sc.Fault) -> str:
        return self._cut(f"srv{fault.target}", fault)

    def _cut_devices(self, fault: sc.Fault) -> str:
        return self._cut(f"dev{fault.target}", fault)

    def _store_fill(self, fault: sc.Fault) -> str:
        """Cut the gateway from the server (or stop the server without namespaces) and
        publish telemetry as filler devices until the store drops for room."""
        rig = self.sites[fault.target]
        link = self.net.links[f"srv{rig.index}"] if self.net else None
        if link is not None:
            link.cut()
        else:
            assert self.server is not None
            self.server.stop()
        try:
            before = rig.stats().dropped().get("full_telemetry", 0)
            sent = self._fill(rig, lambda: rig.stats().dropped().get("full_telemetry", 0) > before)
        finally:
            if link is not None:
                link.restore()
            else:
                self.start_server()
        return f"{rig.name}: {sent} telemetry events"

    def _fill(self, rig: SiteRig, full: Callable[[], bool]) -> int:
        """Telemetry from fresh filler devices, 100 at a time, until `full()` (bounded: each
        filler stays under the gateway's burst, together they send the limit and 500 more)."""
        used = sum(1 for f in rig.fillers if f in self.filler_acked)
        count = math.ceil((self.settings.store_limit + 500) / FILL_PER_FILLER)
        sent = 0
        for filler in rig.fillers[used : used + count]:
            client = rig.site.device(filler).connected()
            acked = 0
            try:
                while acked < FILL_PER_FILLER and not full():
                    infos = [
                        client.client.publish(
                            f"nps/v1/{filler}/telemetry",
                            filler_event(filler, rig.name, acked + k + 1),
                            qos=1,
                        )
                        for k in range(100)
                    ]
                    for info in infos:
                        info.wait_for_publish(30)
                    acked += len(infos)
            finally:
                self.filler_acked[filler] = acked
                client.close()
            sent += acked
            if full():
                return sent
        if wait_full(full):
            return sent
        raise AssertionError(f"{rig.name}'s store never dropped telemetry after {sent} events")

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


def wait_full(full: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll (bounded) until the gateway counted a drop for room; False when it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if full():
            return True
        time.sleep(0.2)
    return False


def filler_event(device: str, site: str, seq: int) -> bytes:
    """A contract telemetry event of a filler device (only there to fill a store)."""
    event = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": site, "seq": seq,
        "boot": 0, "up_ms": seq, "ts": time.time(), "fw": "chaos-filler",
        "type": "telemetry", "battery_mv": 3900, "rssi": -60, "errors": {},
    }  # fmt: skip
    return json.dumps(event).encode()
