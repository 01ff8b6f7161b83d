"""A fleet through the whole system: `python -m bench fleet_load` (or `python -m bench.fleet_load`).

    .venv/bin/python -m bench.fleet_load                      # 10,000 devices, a few minutes
    .venv/bin/python -m bench.fleet_load --devices 2000 --step-s 15 --burst 20000

What runs, all on this machine, as an operator would run it:

- two sites, each with its devices registered in the server's registry and its
  Mosquitto configured by `nps-edge broker config` (logins, ACL, the shipped
  queue and in-flight settings) and started on that file;
- one `nps-edge gateway` per site, logged in with the file's gateway login;
- `nps-edge server --workers N` on a PostgreSQL database of its own;
- the devices: `--devices` in all, nearly all light publishers
  (bench/fleet_devices.py, one asyncio process per site, one MQTT connection
  and one `seq` per device, QoS 1, contract events), plus `--firmware` devices
  running the real firmware under the MicroPython unix port (paced, real
  clock) whose events are then checked at the server (no missing seq), and
  two marker devices per site that measure latency.

Phases: (1) reference: a bare paho subscriber per site (the gateway's login,
gateways not running) receives a burst of `--burst` events from every
device; (2) the gateways and server run while the devices offer each rate of
`--rates` for `--step-s` seconds; (3) saturation: the same burst as fast as
the brokers take it, timed until the server confirmed the last event; (4) the
bare subscriber again, the better of the two kept (the conservative ratio);
(5) reference: a bare INSERT (executemany, 1,000 per transaction) of as many
feedback rows into the same PostgreSQL. Before each step and the saturation
burst, when the PostgreSQL service runs with autovacuum off (this CI
machine's does), an untimed VACUUM ANALYZE stands in for it.

Latency, publish to queryable: each marker device publishes one event a
second (its own `seq`), stamped when the PUBLISH is written; the prober then
polls `GET /api/v1/devices/{id}/gaps` (operator token) every `--poll-ms`
until `max_seq` reaches that seq, i.e. until the event is committed and
answered by the server's read API. Resolution: the poll interval. During the
saturation burst, where an event waits seconds behind the backlog, the prober
polls every `--saturation-poll-ms` (1 s) instead: at 100 ms its four markers
asked 40 times a second, and those requests (each with its token check) took
16-25 % of the server workers' busy time (py-spy), load that the bare
subscriber it is compared with never carries.

Events/s end to end = events the server confirmed to the gateways (their
stores' `forwarded` counters) over the time taken. CPU and peak RSS of each
process come from /proc (PostgreSQL: the backends connected to this run's
database). Results: a JSON file (`--json`), a table on stdout, and the plots
in docs/img/ (bench/plots.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text
from sqlmodel import Session

from bench import fleet_devices, plots
from bench.fleet_measure import (
    Prober,
    cpu_between,
    forward_counts,
    latency_summary,
    process_tree,
    sample,
)
from bench.fleet_report import machine, ratios, table
from bench.gateway_throughput import store_delivered
from bench.server_load import bare_insert_rate, database, start_server
from firmware.sim.plans import device_id, random_plan
from firmware.sim.run import run_plans
from nps_edge.broker import Broker, free_port
from nps_edge.processes import nps_edge_command
from nps_edge.site_broker import start_site_broker
from server.db.engine import make_engine, upgrade
from server.identity.registry import mosquitto_hash
from server.identity.tokens import create_token
from server.models import RegisteredDevice
from tests.gateway.processes import GatewayProcess

SITES = ("fleet-a", "fleet-b")
MARKERS_PER_SITE = 2


def say(message: str) -> None:
    print(f"[fleet_load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Site:
    name: str
    root: Path
    logins: list[list[str]] = field(default_factory=list)  # light devices: [id, site, pw]
    markers: list[list[str]] = field(default_factory=list)
    firmware: list[list[str]] = field(default_factory=list)
    port: int = 0
    broker: Broker | None = None
    gateway_login: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    devices: subprocess.Popen[str] | None = None
    gateway: GatewayProcess | None = None
    metrics_port: int = 0


def register(engine: Any, sites: list[Site], devices: int, firmware: int, seed: int) -> None:
    """Registry rows for every device (the `$7$` hash `nps-edge device add` stores), split
    over the sites: light devices, markers and the firmware sample."""
    light = devices - firmware - MARKERS_PER_SITE * len(sites)
    rows = []
    for k, site in enumerate(sites):
        kinds = (
            (site.logins, [f"fl-{site.name[-1]}-{i:05d}" for i in range(k, light, len(sites))]),
            (site.markers, [f"fl-{site.name[-1]}-mark{i}" for i in range(MARKERS_PER_SITE)]),
            (site.firmware, [device_id(seed, i) for i in range(k, firmware, len(sites))]),
        )
        for logins, names in kinds:
            for name in names:
                password = f"pw-{name}-{seed}"  # bench only: the registry keeps the hash alone
                rows.append(
                    RegisteredDevice(
                        device=name,
                        site=site.name,
                        username=name,
                        password_hash=mosquitto_hash(password),
                        created_at=time.time(),
                    )
                )
                logins.append([name, site.name, password])
    with Session(engine) as s:
        s.add_all(rows)
        s.commit()


def start_site(site: Site, db: str) -> None:
    """`nps-edge broker config` for the site, then Mosquitto on the file it wrote."""
    site.port = free_port()
    conf = site.root / "broker"
    subprocess.run(
        [
            *nps_edge_command(),
            "broker",
            "config",
            "--db",
            db,
            "--site",
            site.name,
            "--out",
            str(conf),
            "--port",
            str(site.port),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    site.gateway_login = tomllib.loads((conf / "gateway.toml").read_text())
    site.broker = start_site_broker(conf, port=site.port)


def start_devices(site: Site, window: int, seed: int) -> None:
    assert site.broker is not None
    logins = site.root / "logins.json"
    logins.write_text(json.dumps(site.logins))
    site.devices = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fleet_devices",
            "--broker",
            site.broker.address,
            "--logins",
            str(logins),
            "--window",
            str(window),
            "--seed",
            str(seed),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"device process {proc.pid} ended ({proc.poll()})")
    result: dict[str, Any] = json.loads(line)
    return result


def drive(sites: list[Site], command: str) -> list[dict[str, Any]]:
    """Send one command to every site's device process at once; their answers."""
    for site in sites:
        assert site.devices is not None and site.devices.stdin is not None
        site.devices.stdin.write(command + "\n")
        site.devices.stdin.flush()
    return [answer(site.devices) for site in sites if site.devices is not None]


def forwarded(sites: list[Site]) -> int:
    """Events the server confirmed to the gateways (their stores' counters)."""
    return sum(
        store_delivered(site.gateway.store)()[0] for site in sites if site.gateway is not None
    )


def wait_forwarded(sites: list[Site], target: int, timeout: float) -> float:
    """Poll until the server confirmed `target` events in all; the wall time it happened."""
    deadline = time.monotonic() + timeout
    while forwarded(sites) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"server confirmed {forwarded(sites)} of {target} in {timeout} s")
        time.sleep(0.02)
    return time.time()


class BareSubscriber:
    """Reference: paho, QoS 1, no store, no forwarding, with the site's gateway login."""

    def __init__(self, site: Site) -> None:
        assert site.broker is not None
        self.n = 0
        self.last = 0.0
        login = site.gateway_login
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=login["broker_username"], clean_session=True
        )
        self.client.username_pw_set(login["broker_username"], login["broker_password"])
        self.client.on_message = self.on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(site.broker.host, site.broker.port)
        self.client.subscribe([("nps/v1/+/feedback", 1), ("nps/v1/+/telemetry", 1)])
        self.client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError(f"bare subscriber of {site.name}: no SUBACK")

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.n += 1
        self.last = time.time()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bare_phase(sites: list[Site], burst: int) -> dict[str, float]:
    subs = [BareSubscriber(site) for site in sites]
    start, cpu0 = time.time(), time.process_time()  # this process: the subscribers' threads
    pub = drive(sites, f"burst {burst // len(sites)}")
    total = sum(p["acked"] for p in pub)
    deadline = time.monotonic() + 300
    while sum(s.n for s in subs) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    got, last = sum(s.n for s in subs), max(s.last for s in subs)
    cpu = time.process_time() - cpu0
    for s in subs:
        s.close()
    return {
        "events": got,
        "rate": got / (last - start),
        "published_rate": publish_rate(pub),
        "cpu_ms_per_event": round(1000 * cpu / max(got, 1), 4),
    }


def publish_rate(answers: list[dict[str, Any]]) -> float:
    first = min(a["first_publish"] for a in answers)
    last = max(a["last_ack"] for a in answers)
    return sum(a["acked"] for a in answers) / max(last - first, 1e-9)


def run_firmware(sites: list[Site], seconds: float, seed: int, out: dict[str, Any]) -> None:
    """The real firmware, paced on the real clock, one prompt every 15 to 30 s per device."""
    plans = []
    for site in sites:
        assert site.broker is not None
        for name, site_name, password in site.firmware:
            plan = random_plan(
                name,
                site_name,
                (site.broker.host, site.broker.port),
                max(1, int(seconds // 25)),
                random.Random(f"{seed}:{name}"),
                int(time.time() * 1000),
                paced=True,
            )
            plan.config["broker"] |= {"username": name, "password": password}
            plans.append(plan)
    folder = sites[0].root / "firmware"
    folder.mkdir(exist_ok=True)
    tallies = run_plans(plans, folder, progress=False, pace_s=15.0)
    out["acked"] = {p.device: len(t.events) for p, t in zip(plans, tallies, strict=True)}


def firmware_check(api: str, token: str, acked: dict[str, int]) -> dict[str, Any]:
    """Every event the firmware saw acknowledged is at the server, no seq missing."""
    headers = {"Authorization": f"Bearer {token}"}
    out = {}
    for device, n in acked.items():
        r = httpx.get(f"{api}/api/v1/devices/{device}/gaps", headers=headers, timeout=30)
        gaps = r.json() if r.status_code == 200 else {"received": 0, "missing": None}
        out[device] = {"acked": n, "received": gaps["received"], "missing": gaps["missing"]}
    return out


def processes(sites: list[Site], server: subprocess.Popen[bytes]) -> dict[str, list]:
    """The run's processes by group; PostgreSQL's backends are added by `sample_now`."""
    pids: dict[str, list[int]] = {"server": process_tree(server.pid)}
    for site in sites:
        assert site.broker and site.devices and site.gateway and site.gateway.proc
        pids[f"mosquitto {site.name}"] = [site.broker.proc.pid]
        pids[f"gateway {site.name}"] = [site.gateway.proc.pid]
        pids[f"devices {site.name}"] = [site.devices.pid]
    pids["bench (prober, bare subscriber)"] = [os.getpid()]
    return pids


BACKENDS = "postgres (this database's backends)"


def sample_now(pids: dict[str, list[int]], engine: Engine) -> dict[str, dict[str, float]]:
    """`sample(pids)` with the database's backends (but the one asking) listed afresh: a
    pool opens connections as it needs them (ingest's own pool at the first batch), and
    a backend missing from the list had its CPU left out. One that connected since the
    last sample has all its CPU from after it: it is counted whole."""
    with engine.connect() as conn:
        pids[BACKENDS] = list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
        )
    return sample(pids)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench.fleet_load", *sys.argv[1:]]),
        "machine": machine(),
        "devices": args.devices,
        "firmware_devices": args.firmware,
        "workers": args.workers,
        "load_average": {"start": os.getloadavg()},
    }
    url, drop = database("postgres", root)
    sites = [Site(name, root / name) for name in SITES]
    server = None
    try:
        engine = make_engine(url)
        upgrade(engine)
        say(f"registering {args.devices:,} devices in {url.rsplit('/', 1)[1]}")
        register(engine, sites, args.devices, args.firmware, args.seed)
        with Session(engine) as s:
            for site in sites:
                site.token = create_token(s, name=f"gw-{site.name}", role="gateway", site=site.name)
            operator = create_token(s, name="fleet-op", role="operator")
        for site in sites:
            site.root.mkdir(parents=True)
            start_site(site, url)
            start_devices(site, args.window, args.seed + len(site.logins))
        t0 = time.monotonic()
        connected = [answer(site.devices) for site in sites if site.devices is not None]
        say(
            f"{sum(c['connected'] for c in connected):,} light devices connected and logged in"
            f" in {time.monotonic() - t0:.0f} s"
        )

        say(f"reference: bare paho subscriber per site, burst of {args.burst:,}")
        bare = [bare_phase(sites, args.burst)]
        say(f"  bare subscriber: {bare[0]['rate']:,.0f} events/s")

        server, api = start_server(url, args.workers, root / "server.log")
        for site in sites:
            assert site.broker is not None
            login = {k: v for k, v in site.gateway_login.items() if k != "broker"}
            site.metrics_port = free_port()
            site.gateway = GatewayProcess(
                site.root / "gateway",
                site.broker.address,
                api,
                site.token,
                settings=login | {"gateway_id": f"gw-{site.name}"},
                metrics_port=site.metrics_port,
            )
            site.gateway.start()
        pids = processes(sites, server)
        markers = [
            (site.broker.host, site.broker.port, login)
            for site in sites
            if site.broker is not None
            for login in site.markers
        ]
        prober = Prober(markers, api, operator, args.poll_ms / 1000)
        ports = [site.metrics_port for site in sites]
        prober.start()
        firmware: dict[str, Any] = {}
        fw_thread = threading.Thread(
            target=run_firmware,
            args=(sites, args.step_s * len(args.rates), args.seed, firmware),
            daemon=True,
        )
        if args.firmware:
            fw_thread.start()

        vacuum = AutovacuumStandIn(engine)
        steps = []
        for rate in args.rates:
            vacuum.between_steps()
            prober.phase = f"offered {rate:g}"
            polls0 = prober.polls
            before, f0, t0 = sample_now(pids, engine), forwarded(sites), time.time()
            requests0 = forward_counts(ports)
            load0 = os.getloadavg()[0]
            say(f"offered {rate:,.0f} events/s for {args.step_s:g} s")
            pub = drive(sites, f"rate {rate / len(sites)} {args.step_s}")
            t1, f1, polls1 = time.time(), forwarded(sites), prober.polls
            sent = sum(p["acked"] for p in pub)
            after = sample_now(pids, engine)
            t2 = wait_forwarded(sites, f0 + sent, 600)
            step = {
                "offered": rate,
                "published": sent,
                "held_by_window": sum(p["held"] for p in pub),
                "published_rate": round(sent / (t1 - t0)),
                "delivered_rate": round((f1 - f0) / (t1 - t0)),
                "drain_after_s": round(t2 - t1, 2),
                "delivered_rate_with_drain": round(sent / (t2 - t0)),
                "gateway_requests": request_stats(requests0, forward_counts(ports), sent),
                "latency": latency_summary(prober.latencies.get(prober.phase, [])),
                "prober_polls_per_s": round((polls1 - polls0) / (t1 - t0), 1),
                "cpu_cores": cpu_between(before, after, t1 - t0),
                "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
            steps.append(step)
            say(f"  delivered {step['delivered_rate']:,}/s, latency {step['latency']}")
        result["steps"] = steps

        vacuum.between_steps()
        result["vacuum_between_steps"] = vacuum.runs
        say(f"saturation: burst of {args.burst:,} through gateways and server")
        prober.phase, prober.poll_s = "saturation", args.saturation_poll_ms / 1000
        polls0 = prober.polls
        before, f0, start = sample_now(pids, engine), forwarded(sites), time.time()
        requests0 = forward_counts(ports)
        pub = drive(sites, f"burst {args.burst // len(sites)}")
        sent = sum(p["acked"] for p in pub)
        done = wait_forwarded(sites, f0 + sent, 900)
        after = sample_now(pids, engine)
        result["saturation"] = {
            "events": sent,
            "rate": round(sent / (done - start)),
            "published_rate": round(publish_rate(pub)),
            "gateway_requests": request_stats(requests0, forward_counts(ports), sent),
            "latency": latency_summary(prober.latencies.get("saturation", [])),
            "prober_polls_per_s": round((prober.polls - polls0) / (done - start), 1),
            "cpu_cores": cpu_between(before, after, done - start),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        say(f"  end to end {result['saturation']['rate']:,}/s")
        prober.close()
        if args.firmware:
            say("waiting for the firmware sample to finish its prompts")
            fw_thread.join(600)
            acked = firmware.get("acked", {})
            deadline = time.monotonic() + 60
            while True:
                check = firmware_check(api, operator, acked)
                if all(c["received"] >= c["acked"] for c in check.values()):
                    break
                if time.monotonic() > deadline:
                    break  # reported as it stands: received < acked is a finding
                time.sleep(0.2)
            result["firmware"] = check
        result["processes"] = {
            k: {"peak_rss_mb": round(v["peak_mb"], 1), "processes": v["processes"]}
            for k, v in sample(pids).items()
        }
        for site in sites:
            assert site.gateway is not None
            site.gateway.stop()
        say("reference again: bare subscriber, gateways stopped")
        bare.append(bare_phase(sites, args.burst))
        result["bare_subscriber"] = max(bare, key=lambda b: b["rate"])
        result["bare_subscriber_runs"] = [round(b["rate"]) for b in bare]
        say(f"reference: bare INSERT of {args.burst:,} feedback rows")
        result["bare_insert_rows_per_s"] = round(bare_insert_rate(engine, args.burst, args.seed))
        engine.dispose()
    finally:
        result["load_average"]["end"] = os.getloadavg()
        for site in sites:
            if site.devices is not None:
                site.devices.kill()
            if site.gateway is not None:
                site.gateway.stop()
            if site.broker is not None:
                site.broker.stop()
        if server is not None:
            server.terminate()
            server.wait(60)
        drop()
    return result


class AutovacuumStandIn:
    """VACUUM ANALYZE of the run's database between steps (untimed) when the PostgreSQL
    service runs with autovacuum off (as this CI machine's does): the rollups, updated
    by every batch, would otherwise carry a whole run's dead rows, a cost no server
    with autovacuum on pays. Nothing is done when autovacuum is on."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        with engine.connect() as conn:
            self.needed = conn.execute(text("SHOW autovacuum")).scalar() == "off"
        self.runs = 0

    def between_steps(self) -> None:
        if not self.needed:
            return
        t0 = time.monotonic()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        self.runs += 1
        took = time.monotonic() - t0
        say(f"  autovacuum is off on this server: VACUUM ANALYZE took {took:.1f} s")


def request_stats(
    before: tuple[float, float], after: tuple[float, float], events: int
) -> dict[str, float]:
    """The gateways' ingest requests over a phase: events per request, ms per request."""
    n = max(after[0] - before[0], 1.0)
    return {
        "requests": n,
        "events_per_request": round(events / n, 1),
        "ms_per_request": round(1000 * (after[1] - before[1]) / n, 1),
    }


def main() -> None:
    class Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """The docstring as written, and each option's default."""

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--devices", type=int, default=10_000, help="devices in all")
    p.add_argument("--firmware", type=int, default=4, help="of them, real firmware (unix port)")
    p.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="server worker processes: one more than the cores, as docs/server.md advises on"
        " PostgreSQL",
    )
    p.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default="250,500,1000,2000,4000",
        help="offered events/s, comma-separated",
    )
    p.add_argument("--step-s", type=float, default=30.0, help="seconds per offered rate")
    p.add_argument("--burst", type=int, default=40_000, help="events of the saturation burst")
    p.add_argument("--window", type=int, default=4, help="PUBACKs outstanding per device")
    p.add_argument("--poll-ms", type=float, default=100.0, help="latency prober's poll interval")
    p.add_argument(
        "--saturation-poll-ms",
        type=float,
        default=1000.0,
        help="the prober's poll interval during the saturation burst",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the events' contents")
    p.add_argument(
        "--json", type=Path, default=Path("docs/img/fleet_load.json"), help="result file"
    )
    p.add_argument("--no-plot", action="store_true", help="do not write docs/img/*.png")
    args = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.devices + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is below {args.devices + 1000}")
    fleet_devices.raise_open_files()  # inherited by Mosquitto and the device processes
    root = Path(tempfile.mkdtemp(prefix="nps-fleet-"))
    root.chmod(0o711)  # Mosquitto, started as root, reads its files as `mosquitto`
    try:
        result = run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratios(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    table(result)
    if not args.no_plot:
        for path in plots.fleet_load(result):
            say(f"wrote {path}")


if __name__ == "__main__":
    main()
