"""The parts as child processes, through the contract's commands only.

`nps-edge demo` and the end-to-end tests start the server, the gateway and
the simulator exactly as an operator would, with `nps-edge ...` commands;
this module is the one place that knows how.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from nps_edge.broker import free_port, terminate

# The gateway reads its token from here (gateway/config.py: env prefix NPS_EDGE_).
TOKEN_ENV = "NPS_EDGE_TOKEN"


class ProcessError(RuntimeError):
    """A part failed to start or stopped; the message names it and its log."""


def nps_edge_command() -> list[str]:
    """`nps-edge` from this environment (works before and after installation)."""
    script = Path(sys.executable).parent / "nps-edge"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "nps_edge.cli"]


@dataclass
class Child:
    """A running part: its process, its log file and how to reach it."""

    name: str
    proc: subprocess.Popen
    log: Path
    url: str | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not finish in time; returns the exit code."""
        return terminate(self.proc, timeout)

    def kill(self) -> None:
        terminate(self.proc, 0)


def spawn(
    name: str,
    args: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Child:
    """`nps-edge ARGS` as a child logging to log; `prefix` runs it through another
    command that execs it (`ip netns exec NS`: the chaos suite's network namespaces)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out: IO[bytes] = log.open("ab")
    proc = subprocess.Popen(
        [*prefix, *nps_edge_command(), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    out.close()
    return Child(name, proc, log)


def wait_until(
    predicate: Callable[[], Any], timeout: float = 60.0, what: str = "it", interval: float = 0.05
) -> Any:
    """Poll predicate() (bounded) until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise ProcessError(f"timed out after {timeout:.0f}s waiting for {what}")


def gateway_status(store: Path) -> dict[str, Any]:
    """`nps-edge gateway status --store PATH --json`, decoded."""
    done = subprocess.run(
        [*nps_edge_command(), "gateway", "status", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise ProcessError(f"gateway status failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def create_token(db: str, role: str, name: str, *, site: str | None = None) -> str:
    """`nps-edge token create`: the token is the only thing on stdout (never in argv or a log).

    `site` binds the token to one site (contract, December 2026: required for gateways).
    """
    args = ["token", "create", "--db", db, "--role", role, "--name", name]
    if site is not None:
        args += ["--site", site]
    done = subprocess.run(
        nps_edge_command() + args,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise ProcessError(f"token create failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def wait_child(child: Child, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ready() until true (bounded); fail early, with the child's log, if it died."""

    def check() -> bool:
        if not child.alive():
            raise ProcessError(f"{child.name} exited ({child.proc.returncode}):\n{child.tail()}")
        return ready()

    try:
        wait_until(check, timeout, what, interval=0.05)
    except ProcessError as err:
        if child.alive():  # timed out: say what the child logged
            raise ProcessError(f"{child.name}: {err}:\n{child.tail()}") from None
        raise


def started(child: Child, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """wait_child, and a child that did not get ready is stopped, not left running."""
    try:
        wait_child(child, ready, what, timeout)
    except ProcessError:
        child.stop()
        raise


def answers(url: str) -> bool:
    """True when url answers 200."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def start_server(
    db: str,
    log: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    workers: int | None = None,
    timeout: float = 60.0,
) -> Child:
    port = port or free_port(host)
    args = ["server", "--db", db, "--host", host, "--port", str(port)]
    if workers is not None:
        args += ["--workers", str(workers)]
    child = spawn("server", args, log)
    child.url = f"http://{host}:{port}"
    started(child, lambda: answers(f"{child.url}/healthz"), f"{child.url}/healthz", timeout)
    return child


def start_gateway(
    server_url: str,
    token: str,
    broker: str,
    store: Path,
    log: Path,
    extra: tuple[str, ...] = (),
    *,
    name: str = "gateway",
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Child:
    """Start the gateway and return once it has subscribed on the broker (bounded).

    The token goes in the environment (`NPS_EDGE_TOKEN`), never in argv: any local
    user can read every process's command line (`ps`, /proc/PID/cmdline), while
    /proc/PID/environ is readable only by the process's owner.
    """
    args = ["gateway", "--server", server_url, "--broker", broker]
    args += ["--store", str(store), *extra]
    before = subscriptions(log)
    child = spawn(name, args, log, env={**(env or {}), TOKEN_ENV: token}, prefix=prefix)
    started(child, lambda: subscriptions(log) > before, "its subscription on the broker")
    return child


def subscriptions(log: Path) -> int:
    """How often the gateway's structured log says it (re)subscribed."""
    return log.read_text(errors="replace").count('"msg": "subscribed"') if log.exists() else 0


def run_sim(
    args: list[str], timeout: float = 600.0, stderr: IO[str] | None = None
) -> dict[str, Any]:
    """`nps-edge sim ...` to the end; returns its last stdout line, the JSON summary."""
    done = subprocess.run(
        nps_edge_command() + ["sim", *args],
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise ProcessError(f"sim failed ({done.returncode}): {(done.stderr or '')[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise ProcessError("sim printed no summary line")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary
