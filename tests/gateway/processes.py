"""Real processes for the end-to-end proofs: `nps-edge server` and `nps-edge gateway`.

Imported by the end-to-end tests and by bench/gateway_throughput.py, so the
benchmark runs exactly what the tests prove.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import free_port, wait_for_port


class NotAvailable(RuntimeError):
    """A part of the system this proof needs has not landed in this checkout."""


def run_cli(bin_: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [bin_, *args], capture_output=True, text=True, timeout=120, env=env or os.environ.copy()
    )
    if "not yet available" in proc.stderr:
        raise NotAvailable(proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


@dataclass
class ServerProcess:
    """`nps-edge server` on SQLite with a gateway and an operator token."""

    bin: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    gateway_token: str = ""
    operator_token: str = ""

    @property
    def db(self) -> str:
        return f"sqlite:///{self.workdir / 'server.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_tokens(self) -> None:
        if "--db" not in run_cli(self.bin, "token", "create", "--help"):
            raise NotAvailable("`nps-edge token create` is still the placeholder")
        self.workdir.mkdir(parents=True, exist_ok=True)
        make = ("token", "create", "--db", self.db)
        self.gateway_token = run_cli(self.bin, *make, "--role", "gateway", "--name", "gw").strip()
        self.operator_token = run_cli(self.bin, *make, "--role", "operator", "--name", "op").strip()

    def start(self) -> None:
        if not self.gateway_token:
            self.create_tokens()
        log = (self.workdir / "server.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NPS_EDGE_")}
        self.proc = subprocess.Popen(
            [self.bin, "server", "--db", self.db, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for_port("127.0.0.1", self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        stop_process(self.proc)

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        response = httpx.get(self.url + path, params=params, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()


@dataclass
class GatewayProcess:
    """`nps-edge gateway` as an operator runs it (flags + NPS_EDGE_* environment)."""

    bin: str
    workdir: Path
    broker: str
    server: str
    token: str
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    proc: subprocess.Popen | None = None
    client_id: str = field(default_factory=lambda: f"gw-{uuid.uuid4().hex[:8]}")

    @property
    def store(self) -> Path:
        return self.workdir / "gateway.db"

    @property
    def log(self) -> Path:
        return self.workdir / "gateway.log"

    def subscriptions(self) -> int:
        return self.log.read_text().count('"msg": "subscribed"') if self.log.exists() else 0

    def start(self, wait: bool = True) -> None:
        """Start; with `wait`, return once it has (re)subscribed on the broker."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        before = self.subscriptions()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NPS_EDGE_")}
        env |= {"NPS_EDGE_CLIENT_ID": self.client_id, "NPS_EDGE_GATEWAY_ID": "gw-e2e"} | self.env
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                self.bin, "gateway", "--server", self.server, "--token", self.token,
                "--broker", self.broker, "--store", str(self.store),
                "--metrics-port", str(self.metrics_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        if wait:
            proc = self.proc
            wait_until(
                lambda: self.subscriptions() > before or proc.poll() is not None,
                what="the gateway to subscribe",
            )
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)

    def status(self) -> dict[str, Any]:
        if not self.store.exists():
            return {"depth": 0, "received": 0}
        out = run_cli(self.bin, "gateway", "status", "--store", str(self.store), "--json")
        return json.loads(out)


def stop_process(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


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
