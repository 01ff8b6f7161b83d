"""Fixtures for the device firmware tests: the compiled firmware, live devices, a subscriber."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from contract.protocol import parse_event
from firmware.sim.device import DeviceProcess, compile_firmware
from firmware.sim.plans import device_config
from firmware.tools import serial_tools as st
from nps_edge.broker import Broker


@pytest.fixture(scope="session")
def firmware_code(tmp_path_factory: pytest.TempPathFactory, micropython_bin: str) -> Path:
    """firmware/device compiled with mpy-cross, as the simulator runs it."""
    return compile_firmware(tmp_path_factory.mktemp("firmware-mpy"))


class Subscriber:
    """A paho client on the test broker collecting everything under the topic root."""

    def __init__(
        self,
        broker: Broker,
        topic: str = "nps/v1/#",
        client_id: str = "test-sub",
        clean_session: bool = True,
    ) -> None:
        self.messages: list[tuple[str, bytes | bytearray, bool]] = []  # paho's payload type
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self._changed.notify_all()

    def wait_messages(
        self, n: int, timeout: float = 10.0
    ) -> list[tuple[str, bytes | bytearray, bool]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < n:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(self.messages)} of {n} messages after {timeout}s")
                self._changed.wait(0.2)
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Every feedback and telemetry payload, validated against the contract models."""
        out = []
        with self._changed:
            messages = list(self.messages)
        for topic, payload, _ in messages:
            if topic.endswith(("/feedback", "/telemetry")):
                event = json.loads(payload)
                parse_event(event)  # raises InvalidEvent on any contract breach
                assert topic.split("/")[2] == event["device"]
                assert topic.endswith("/" + event["type"])
                out.append(event)
        return out

    def wait_for(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if check(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met after {timeout}s; got {len(events)}")
            with self._changed:
                self._changed.wait(0.2)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def make_subscriber() -> Iterator[Callable[..., Subscriber]]:
    """Extra subscribers (own client id), closed at the end of the test."""
    made: list[Subscriber] = []

    def make(
        broker: Broker, topic: str = "nps/v1/#", client_id: str = "test-sub-2", clean: bool = True
    ) -> Subscriber:
        sub = Subscriber(broker, topic, client_id, clean)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def subscriber(mqtt_broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(mqtt_broker)
    sub.wait_for(lambda _: True)
    yield sub
    sub.close()


class Devices:
    """Starts firmware processes in flash folders; kills leftovers at the end of a test."""

    def __init__(self, root: Path, code: Path, micropython: str) -> None:
        self.root = root
        self.code = code
        self.micropython = micropython
        self.started: list[DeviceProcess] = []

    def folder(self, name: str, config: dict[str, Any] | str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        text = config if isinstance(config, str) else json.dumps(config)
        (folder / "config.json").write_text(text)
        return folder

    def start(self, folder: Path, heapsize: str = "64k") -> DeviceProcess:
        proc = DeviceProcess(folder, self.code, self.micropython, heapsize=heapsize)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.proc.poll() is None:
                proc.kill()


@pytest.fixture
def devices(tmp_path: Path, firmware_code: Path, micropython_bin: str) -> Iterator[Devices]:
    devs = Devices(tmp_path, firmware_code, micropython_bin)
    yield devs
    devs.stop_all()


def config_for(broker: Broker, device: str = "nps-a1b2c3", **extra: Any) -> dict[str, Any]:
    """A device config pointing at the test broker, scripted clock, stdin in chunks."""
    return device_config(device, "store-1", (broker.host, broker.port), **extra)


@pytest.fixture
def config() -> Callable[..., dict[str, Any]]:
    return config_for


@pytest.fixture
def run_sim(nps_edge_bin: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs `nps-edge sim ARGS...` to the end and returns what it printed."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [nps_edge_bin, "sim", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def board(tmp_path: Path, micropython_bin: str) -> st.LocalDevice:
    """A stand-in board for the field tools: a folder run by the real micropython."""
    root = tmp_path / "board"
    root.mkdir()
    return st.LocalDevice(root, micropython_bin)
