"""Helpers of the site-broker tests: a registry in SQLite, `nps-edge broker config|certs`
run as a user would, the real Mosquitto started on the generated files, and paho clients
logging in as devices or as the gateway.

The tests run as root, so Mosquitto drops to the `mosquitto` user before reading the files:
the site folder lives under a /tmp folder that user may enter (pytest's own is 0700).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from nps_edge.broker import Broker, BrokerError, free_port, mosquitto_binary
from nps_edge.site_broker import start_site_broker
from server.db.engine import make_engine
from server.identity.registry import add_device

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs_mosquitto() -> None:
    if mosquitto_binary() is None:
        message = "mosquitto is not installed: apt-get install mosquitto"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


class Mqtt:
    """A paho client (MQTT 3.1.1) recording CONNACK, disconnects and messages."""

    def __init__(
        self,
        broker: Broker,
        *,
        username: str | None,
        password: str | None,
        client_id: str | None = None,
        clean_session: bool = True,
        ca: Path | None = None,
        server_name: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connack: list[Any] = []
        self.disconnects: list[Any] = []
        self.subacks: list[list[int]] = []
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=username or "" if client_id is None else client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(server_name or broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def _note(self, bucket: list[Any], item: Any) -> None:
        with self._changed:
            bucket.append(item)
            self._changed.notify_all()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._note(self.connack, rc)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._note(self.disconnects, rc)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._note(self.messages, (msg.topic, msg.payload))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._note(self.subacks, [int(c.value) for c in codes])

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Poll (bounded) until check() holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what} after {timeout}s")
                self._changed.wait(0.1)

    def answer(self) -> Any:
        """The CONNACK's return code (or the disconnect that came instead)."""
        self.wait(lambda: bool(self.connack or self.disconnects), "no CONNACK")
        return self.connack[0] if self.connack else self.disconnects[0]

    def connected(self) -> Mqtt:
        rc = self.answer()
        assert not rc.is_failure, f"refused: {rc}"
        return self

    def subscribe(self, *topics: str) -> None:
        count = len(self.subacks)
        self.client.subscribe([(t, 1) for t in topics])
        self.wait(lambda: len(self.subacks) > count, "no SUBACK")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1 and wait for the PUBACK: the broker has handled it (MQTT 3.1.1 section 4.3.2)."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_message(self, payload: bytes, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        """Every message received up to and including the first with payload."""
        self.wait(lambda: any(p == payload for _, p in self.messages), f"no {payload!r}", timeout)
        with self._changed:
            upto = [p for _, p in self.messages].index(payload)
            return list(self.messages[: upto + 1])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Site:
    """One site's registry, generated broker files and running broker."""

    root: Path
    name: str = "site-x"
    db: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    broker: Broker | None = None
    clients: list[Mqtt] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.root / "broker"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def gateway_login(self) -> tuple[str, str]:
        toml = tomllib.loads((self.out / "gateway.toml").read_text())
        return toml["broker_username"], toml["broker_password"]

    def add(self, device: str, site: str | None = None) -> str:
        engine = make_engine(self.db)
        with Session(engine) as session:
            _, password = add_device(session, site=site or self.name, device_id=device)
        engine.dispose()
        self.passwords[device] = password
        return password

    def revoke(self, device: str) -> None:
        """`nps-edge device revoke`, as an operator does it."""
        done = self.cli("revoke", "--db", self.db, "--id", device, group="device")
        assert done.returncode == 0, done.stderr

    def cli(self, *args: str, group: str = "broker") -> subprocess.CompletedProcess[str]:
        """`nps-edge broker ...` (or another group) in a child process, as an installer types it."""
        return subprocess.run(
            [sys.executable, "-m", "nps_edge.cli", group, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def configure(self, *extra: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
        port = port or (self.broker.port if self.broker else free_port())
        args = ["config", "--db", self.db, "--site", self.name, "--out", str(self.out)]
        done = self.cli(*args, "--port", str(port), *extra)
        assert done.returncode == 0, done.stderr
        return done

    def make_certs(self, *names: str) -> subprocess.CompletedProcess[str]:
        flags = [arg for n in names for arg in ("--name", n)]
        done = self.cli("certs", "--site", self.name, "--out", str(self.certs), *flags)
        assert done.returncode == 0, done.stderr
        return done

    def start(self, *extra: str) -> Broker:
        port = free_port()
        self.configure(*extra, port=port)
        try:
            self.broker = start_site_broker(self.out, port=port)
        except BrokerError as err:
            pytest.fail(str(err))
        return self.broker

    def device(self, device: str, password: str | None = None, **kw: Any) -> Mqtt:
        return self.login(device, self.passwords[device] if password is None else password, **kw)

    def gateway(self, **kw: Any) -> Mqtt:
        return self.login(*self.gateway_login, **kw)

    def login(self, username: str | None, password: str | None, **kw: Any) -> Mqtt:
        assert self.broker is not None
        client = Mqtt(self.broker, username=username, password=password, **kw)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.broker is not None:
            self.broker.stop()
