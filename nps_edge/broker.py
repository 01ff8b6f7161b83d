"""MQTT brokers as child processes: amqtt (the embedded default) and Mosquitto (production).

`nps-edge demo` and the tests start a broker on a free port with these
helpers; `python -m nps_edge.broker --port P` runs the embedded amqtt broker
in the foreground.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY_CONFIG = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "mosquitto.conf"


class BrokerError(RuntimeError):
    """The broker could not be started; the message says what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None
) -> None:
    """Poll until something accepts TCP connections on host:port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(
                f"process exited with code {proc.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL when it has not ended after timeout (0: SIGKILL at once)."""
    if proc.poll() is None:
        if timeout > 0:
            proc.send_signal(signal.SIGTERM)
            try:
                return int(proc.wait(timeout))
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
        proc.wait()
    return int(proc.returncode)


@dataclass
class Broker:
    """A running broker child process."""

    kind: str
    host: str
    port: int
    proc: subprocess.Popen
    workdir: Path | None = None
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, timeout)

    def kill(self) -> None:
        terminate(self.proc, 0)


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def mosquitto_config(
    port: int, workdir: Path, template: Path = DEPLOY_CONFIG, host: str = "127.0.0.1"
) -> str:
    """The shipped production config with this instance's listener and data folder."""
    keep = []
    for line in template.read_text().splitlines():
        word = line.strip().split(" ", 1)[0]
        if word in ("listener", "persistence_location", "log_dest", "pid_file", "port"):
            continue
        keep.append(line)
    keep += [
        f"listener {port} {host}",
        "allow_anonymous true",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir}/mosquitto.log",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root Mosquitto switches to the `mosquitto` user, which cannot write
        # a private temp folder: no persistence file, no log. Test brokers stay root.
        keep.append("user root")
    return "\n".join(keep) + "\n"


def start_mosquitto(
    workdir: Path, port: int | None = None, host: str = "127.0.0.1", template: Path = DEPLOY_CONFIG
) -> Broker:
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerError("mosquitto is not installed: apt-get install mosquitto")
    port = port or free_port(host)
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, workdir, template, host))
    log = workdir / "mosquitto.log"
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(host, port, proc=proc)
    except BrokerError as err:
        detail = log.read_text()[-2000:] if log.exists() else ""
        proc.kill()
        raise BrokerError(f"mosquitto failed to start: {err}\n{detail}") from None
    return Broker("mosquitto", host, port, proc, workdir, log)


def start_amqtt(
    workdir: Path | None = None, port: int | None = None, host: str = "127.0.0.1"
) -> Broker:
    """The embedded broker (amqtt, pure Python) in a child process."""
    port = port or free_port(host)
    log = None
    out = subprocess.DEVNULL
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / "amqtt.log"
        out = log.open("ab")  # type: ignore[assignment]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nps_edge.broker", "--host", host, "--port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(host, port, proc=proc)
    return Broker("amqtt", host, port, proc, workdir, log)


def amqtt_config(host: str, port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "timeout_disconnect_delay": 2,
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def _serve_amqtt(host: str, port: int) -> None:
    from amqtt.broker import Broker as AmqttBroker

    broker = AmqttBroker(amqtt_config(host, port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded MQTT broker (amqtt).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    asyncio.run(_serve_amqtt(args.host, args.port))


if __name__ == "__main__":
    main()
