"""Fixtures for the device firmware tests: the compiled firmware, live devices, a subscriber."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.sim.device import DeviceProcess, compile_firmware
from firmware.sim.plans import device_config
from firmware.tools import serial_tools as st
from nps_edge.broker import Broker
from tests.mqtt_subscriber import Subscriber


@pytest.fixture(scope="session")
def firmware_code(tmp_path_factory: pytest.TempPathFactory, micropython_bin: str) -> Path:
    """firmware/device compiled with mpy-cross, as the simulator runs it."""
    return compile_firmware(tmp_path_factory.mktemp("firmware-mpy"))


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
