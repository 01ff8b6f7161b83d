"""`nps-edge demo`: the whole system on one machine with embedded defaults.

The server on SQLite and, for each of the story's three sites, its own broker
(embedded amqtt, on 127.0.0.1 only) and its own gateway with a token bound to
that site, as in the field; simulated devices run the real firmware under the
MicroPython unix port. Each part is a child process started with the same
commands an operator would use. With `--history` a month of plausible answers
goes through that same pipeline first, so the dashboard has a story to tell.

Secrets stay out of argv (the gateway token goes by environment) and out of
the logs; everything under --data is private to the user (umask 077, 0600/0700).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from nps_edge import story_fleet, story_loop, story_voice
from nps_edge.broker import Broker, BrokerError, free_port, start_amqtt, start_mosquitto
from nps_edge.processes import (
    Child,
    ProcessError,
    create_token,
    run_sim,
    spawn,
    start_gateway,
    start_server,
)

# The demo's devices get an ESP32's real MicroPython heap (no PSRAM: about
# 90-110 KB free); the firmware tests run at the tighter 64k (docs/firmware.md).
DEVICE_HEAP = "96k"
# Each live device shows a prompt every 15 to 30 s of real time.
LIVE_PACE_S = 15.0
DURATION = re.compile(r"^(\d+)\s*d?$")
# The story's sites (nps_edge.story): each gets its own broker, gateway and token.
SITES = 3
# Brokers listen here only: the demo's brokers take anonymous clients, so they must
# not be reachable from the network (docs/security.md).
BROKER_HOST = "127.0.0.1"
# Files the demo writes hold tokens, answers and logs: readable by the user only.
PRIVATE_UMASK = 0o077


def parse_duration_days(text: str) -> int:
    """'30d', '7d', '0' -> whole days; a clear error otherwise."""
    match = DURATION.match(text.strip().lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a number of days like 30d, 7d or 0")
    return int(match.group(1))


def say(message: str) -> None:
    typer.echo(f"[demo] {message}", err=True)


@dataclass
class Demo:
    """The running parts, stopped in reverse order of starting."""

    workdir: Path
    brokers: dict[str, Broker] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                say(f"stopping {child.name}")
                child.stop()
        for site, broker in reversed(self.brokers.items()):
            say(f"stopping broker of {site} ({broker.kind})")
            broker.stop()


def make_private(folder: Path) -> None:
    """chmod what exists under folder (left by an earlier run): directories 0700, files 0600."""
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def is_loopback(host: str) -> bool:
    """True when host names this machine only; an unresolvable name counts as not."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def site_names() -> list[str]:
    from nps_edge import story

    return story.site_names(story.Story(end=0.0, sites=SITES))


def write_scenarios(folder: Path, days: int, seed: int) -> dict[str, int]:
    """The demo's story (nps_edge.story) as one scenario file per device, one folder per
    site (each site's devices talk to their own broker); returns the steps per site."""
    from nps_edge import story

    scenarios = story.generate(
        story.Story(
            end=time.time(),
            days=days,
            seed=seed,
            sites=SITES,
            devices_per_site=4,
            prompts_per_day=14.0,
            telemetry_minutes=(60.0, 90.0),
        )
    )
    steps: dict[str, int] = {}
    for scenario in scenarios:
        # The simulator does not pass `survey` to the firmware (a device asks its relationship
        # question on its own calendar): relationship steps would arrive as transactional.
        scenario["steps"] = [s for s in scenario["steps"] if s.get("survey") != "relationship"]
        site_folder = folder / scenario["site"]
        site_folder.mkdir(parents=True, exist_ok=True)
        (site_folder / f"{scenario['device']}.json").write_text(json.dumps(scenario))
        steps[scenario["site"]] = steps.get(scenario["site"], 0) + len(scenario["steps"])
    return steps


def live_devices(demo: Demo, broker: str, devices: int, seed: int, site: str) -> None:
    """Keep a few simulated devices answering prompts while the demo runs."""
    args = ["sim", "--broker", broker, "--devices", str(devices), "--responses", "1000000"]
    args += ["--seed", str(seed), "--site", site, "--state", str(demo.workdir / "live")]
    args += ["--heapsize", DEVICE_HEAP, "--pace", str(LIVE_PACE_S)]
    demo.children.append(spawn("live devices", args, demo.workdir / "sim-live.log"))


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        history: str = typer.Option(
            "30d", help="Days of simulated history sent through the pipeline: 30d, 7d or 0."
        ),
        devices: int = typer.Option(3, min=0, help="Live simulated devices answering prompts."),
        port: int = typer.Option(8000, help="Dashboard port (a free one is picked if taken)."),
        host: str = typer.Option("127.0.0.1", help="Address the dashboard listens on."),
        data: Path = typer.Option(
            Path("var/demo"), help="Folder for the demo's database, stores and logs."
        ),
        broker: str = typer.Option(
            "embedded", help="'embedded' (amqtt, the default) or 'mosquitto' if installed."
        ),
        seed: int = typer.Option(1, help="Seed of the simulated story."),
        fresh: bool = typer.Option(True, help="Start from an empty database each time."),
        exit_when_ready: bool = typer.Option(
            False,
            "--exit-when-ready",
            help="Stop once the history is on the dashboard (for tests and scripts).",
        ),
    ) -> None:
        """Run broker, server, gateway and simulated devices on this machine.

        Prints the dashboard address and an operator login token first; the
        history then fills the dashboard while you look, and live devices keep
        answering until Ctrl-C. Everything lives under --data, logs in *.log.
        """
        days = parse_duration_days(history)
        if broker not in ("embedded", "mosquitto"):
            raise typer.BadParameter("--broker is 'embedded' or 'mosquitto'")
        if fresh and data.exists():
            shutil.rmtree(data)
        # Every file the demo and its children create is the user's alone (0600/0700).
        previous_umask = os.umask(PRIVATE_UMASK)
        data.mkdir(parents=True, exist_ok=True)
        make_private(data)
        run = Demo(data.resolve())
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        try:
            server, operator = _start_sites(run, port, host, broker)
            _banner(str(server.url), operator, run)
            story_loop.first_admin(run.workdir)  # the login of the first admin, on stdout
            if days > 0:
                _send_history(run, str(server.url), operator, days, seed, stopping)
                say(f"the team worked the month: {story_loop.settle(str(server.url), run.workdir)}"
                    " cases left open")  # fmt: skip
            if exit_when_ready or stopping.is_set():
                return
            if devices:
                site, first = next(iter(run.brokers.items()))
                live_devices(run, first.address, devices, seed, site)
                say(f"{devices} live devices at {site} answering prompts; stop with Ctrl-C")
            while not stopping.wait(1.0):
                for child in run.children:
                    if not child.alive():
                        raise ProcessError(f"{child.name} stopped:\n{child.tail()}")
        except (ProcessError, BrokerError) as err:
            say(f"error: {err}")
            say(f"logs are in {run.workdir}")
            raise typer.Exit(1) from None
        finally:
            run.stop()
            os.umask(previous_umask)


def _start_sites(demo: Demo, port: int, host: str, broker_kind: str) -> tuple[Child, str]:
    """The server, then per site a broker, a site-bound gateway token and a gateway.

    One gateway per site, as in the field: a gateway token belongs to one site and the
    server rejects another site's events through it, so a single gateway on one broker
    could not carry three sites. Returns the server and the operator token.
    """
    work = demo.workdir
    say(f"data folder: {work} (readable by you only)")
    db = f"sqlite:///{work / 'server.db'}"
    operator = create_token(db, "operator", "demo-operator")
    if not _port_free(host, port):
        new = free_port(host)
        say(f"port {port} is taken, using {new}")
        port = new
    if not is_loopback(host):
        say(
            f"warning: the dashboard on {host} is reachable from the network over plain HTTP:"
            " the login token travels in clear (put it behind HTTPS for anything but a demo)"
        )
    say("starting server (SQLite) ...")
    server = start_server(db, work / "server.log", port=port, host=host)
    demo.children.append(server)
    for site in site_names():
        broker = _start_broker(work / f"broker-{site}", broker_kind)
        demo.brokers[site] = broker
        say(
            f"broker ({broker.kind}) of {site} on {broker.address}: listens on {BROKER_HOST}"
            " only, not reachable from the network"
        )
        gateway_id = f"gw-{site}"
        token = create_token(db, "gateway", gateway_id, site=site)
        say(f"starting gateway {gateway_id} (token bound to {site}, passed by environment) ...")
        demo.children.append(
            start_gateway(
                str(server.url),
                token,
                broker.address,
                work / f"gateway-{site}.db",
                work / f"gateway-{site}.log",
                extra=("--gateway-id", gateway_id, "--metrics-port", "0"),
                name=f"gateway {site}",
            )
        )
    return server, operator


def _start_broker(folder: Path, kind: str) -> Broker:
    if kind == "mosquitto":
        return start_mosquitto(folder, host=BROKER_HOST)
    return start_amqtt(folder, host=BROKER_HOST)


def _banner(url: str, operator: str, demo: Demo) -> None:
    """The login is for the person at the terminal: stdout only, never under --data."""
    typer.echo("")
    typer.echo(f"  Dashboard:  {url}/")
    typer.echo(f"  Login token (operator): {operator}")
    typer.echo(f"  API docs:   {url}/docs")
    sites = ", ".join(f"{site} {b.address}" for site, b in demo.brokers.items())
    typer.echo(f"  Brokers:    {sites} (127.0.0.1 only)")
    typer.echo(f"  Logs:       {demo.workdir}/*.log, {demo.workdir}/broker-*/")
    typer.echo("")
    sys.stdout.flush()


def _send_history(
    demo: Demo, url: str, operator: str, days: int, seed: int, stopping: threading.Event
) -> None:
    """The story through the real firmware, each site's broker and gateway, with progress."""
    work = demo.workdir
    steps = write_scenarios(work / "history", days, seed)
    story_fleet.seed_folder(f"sqlite:///{work / 'server.db'}", work / "history")  # issue 14
    say(
        f"sending {days} days of history ({sum(steps.values())} device steps at"
        f" {len(steps)} sites) through the real firmware, brokers and gateways; the"
        " dashboard fills in as it arrives ..."
    )
    started = time.monotonic()

    def one_site(site: str) -> dict[str, Any]:
        return run_sim(
            [
                "--broker",
                demo.brokers[site].address,
                "--scenario",
                str(work / "history" / site),
                "--state",
                str(work / "history-devices" / site),
                "--heapsize",
                DEVICE_HEAP,
            ],
            stderr=sys.stderr,
        )

    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        summaries = list(pool.map(one_site, sorted(steps)))
    events = sum(int(s.get("events", 0)) for s in summaries)
    answered = sum(int(s.get("answered", 0)) for s in summaries)
    shown = sum(int(s.get("shown", 0)) for s in summaries)
    say(f"devices sent {events} events ({answered} answers) in {time.monotonic() - started:.0f}s")
    wait_delivered(url, operator, shown, stopping)
    db, since = f"sqlite:///{work / 'server.db'}", time.time() - 6 * 86_400  # links last 7 days
    n = story_voice.post_story_comments(url, operator, work / "history", db, since=since)
    say(f"{n} comments from phones sent through the phone page (the themes panel)")


def wait_delivered(
    url: str, token: str, shown: int, stopping: threading.Event, timeout: float = 300.0
) -> None:
    """Poll the server until it has every prompt the simulator showed (progress on stderr)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline and not stopping.is_set():
        response = httpx.get(
            f"{url}/api/v1/nps", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        have = int(response.json().get("shown", 0)) if response.status_code == 200 else 0
        if have >= shown:
            say(f"server has all {shown} prompts")
            return
        if have != last:
            say(f"server has {have}/{shown} prompts")
            last = have
        stopping.wait(1.0)
    say(f"warning: server has {last}/{shown} prompts after {timeout:.0f}s; continuing")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
