"""`nps-edge demo`: the whole system on one machine with embedded defaults.

The embedded amqtt broker, the server on SQLite, the gateway and simulated
devices running the real firmware under the MicroPython unix port, each a
child process started with the same commands an operator would use. With
`--history` a month of plausible answers goes through that same pipeline
first, so the dashboard has a story to tell on first sight.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

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
    broker: Broker | None = None
    children: list[Child] = field(default_factory=list)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                say(f"stopping {child.name}")
                child.stop()
        if self.broker is not None:
            say(f"stopping broker ({self.broker.kind})")
            self.broker.stop()


def write_scenarios(folder: Path, days: int, seed: int) -> int:
    """The demo's story (nps_edge.story) as one scenario file per device."""
    from nps_edge import story

    folder.mkdir(parents=True, exist_ok=True)
    scenarios = story.generate(
        story.Story(
            end=time.time(),
            days=days,
            seed=seed,
            sites=3,
            devices_per_site=4,
            prompts_per_day=14.0,
            telemetry_minutes=(60.0, 90.0),
        )
    )
    for scenario in scenarios:
        (folder / f"{scenario['device']}.json").write_text(json.dumps(scenario))
    return sum(len(s["steps"]) for s in scenarios)


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
        data.mkdir(parents=True, exist_ok=True)
        run = Demo(data.resolve())
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        try:
            server, operator = _start_site(run, port, host, broker)
            _banner(str(server.url), operator, run.workdir)
            if days > 0:
                _send_history(run, str(server.url), operator, days, seed, stopping)
            if exit_when_ready or stopping.is_set():
                return
            if devices:
                assert run.broker is not None
                live_devices(run, run.broker.address, devices, seed, "demo-live")
                say(f"{devices} live devices answering prompts; stop with Ctrl-C")
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


def _start_site(demo: Demo, port: int, host: str, broker_kind: str) -> tuple[Child, str]:
    """Broker, tokens, server, gateway; returns the server and the operator token."""
    work = demo.workdir
    say(f"data folder: {work}")
    if broker_kind == "mosquitto":
        demo.broker = start_mosquitto(work / "mosquitto")
    else:
        demo.broker = start_amqtt(work / "broker")
    say(f"broker ({demo.broker.kind}) on {demo.broker.address}")
    db = f"sqlite:///{work / 'server.db'}"
    operator = create_token(db, "operator", "demo-operator")
    gateway_token = create_token(db, "gateway", "demo-gateway")
    if not _port_free(host, port):
        new = free_port(host)
        say(f"port {port} is taken, using {new}")
        port = new
    say("starting server (SQLite) ...")
    server = start_server(db, work / "server.log", port=port, host=host)
    demo.children.append(server)
    say("starting gateway ...")
    demo.children.append(
        start_gateway(
            str(server.url),
            gateway_token,
            demo.broker.address,
            work / "gateway.db",
            work / "gateway.log",
            extra=("--metrics-port", "0"),
        )
    )
    return server, operator


def _banner(url: str, operator: str, work: Path) -> None:
    typer.echo("")
    typer.echo(f"  Dashboard:  {url}/")
    typer.echo(f"  Login token (operator): {operator}")
    typer.echo(f"  API docs:   {url}/docs")
    typer.echo(f"  Logs:       {work}/*.log")
    typer.echo("")
    sys.stdout.flush()


def _send_history(
    demo: Demo, url: str, operator: str, days: int, seed: int, stopping: threading.Event
) -> None:
    """The story through the real firmware, broker and gateway, with progress."""
    assert demo.broker is not None
    work = demo.workdir
    steps = write_scenarios(work / "history", days, seed)
    say(
        f"sending {days} days of history ({steps} device steps) through the real firmware,"
        " broker and gateway; the dashboard fills in as it arrives ..."
    )
    started = time.monotonic()
    summary = run_sim(
        [
            "--broker",
            demo.broker.address,
            "--scenario",
            str(work / "history"),
            "--state",
            str(work / "history-devices"),
            "--heapsize",
            DEVICE_HEAP,
        ],
        stderr=sys.stderr,
    )
    say(
        f"devices sent {summary.get('events')} events ({summary.get('answered')} answers) in"
        f" {time.monotonic() - started:.0f}s"
    )
    wait_delivered(url, operator, int(summary.get("shown", 0)), stopping)


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
