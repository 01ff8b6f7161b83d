"""The bundle `build` makes runs: its .mpy files, and only those, imported and booted by the
real MicroPython binary on an ESP32-sized heap.

The ESP32 bundle is compiled with -march=xtensawin. Bytecode-only .mpy files carry no
architecture (header byte 2 is 0) and load on any port, so the unix port runs the very
files the board gets. Only a module with @micropython.native/viper code would be
Xtensa machine code; for such a bundle this test builds an x64 variant to run instead
(and says so), since x64 cannot execute Xtensa instructions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware.tools import bundle
from firmware.tools.romfs import MPY_HEAP  # code from .mpy files: in the heap
from nps_edge.broker import Broker

SIM_BOARD = "unix_sim"


def native_arch(mpy: Path) -> int:
    """The architecture code in a .mpy header; 0 when it holds bytecode only."""
    return mpy.read_bytes()[2] >> 2


@pytest.fixture(scope="module")
def runnable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ESP32 build of the firmware with the simulator's board profile, as a device folder."""
    out = tmp_path_factory.mktemp("bundle") / "esp32"
    manifest = bundle.build(out, compiler=bundle.MpyCross(), board=SIM_BOARD)
    assert manifest.arch == "xtensawin"
    if any(native_arch(out / f.path) for f in manifest.files if f.path.endswith(".mpy")):
        out = out.with_name("x64")
        bundle.build(out, compiler=bundle.MpyCross(), board=SIM_BOARD, arch="x64")
    device = tmp_path_factory.mktemp("device")
    for entry in bundle.Manifest.load(out).files:
        (device / entry.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / entry.path, device / entry.path)
    assert [p.name for p in device.rglob("*.py")] == ["main.py"]  # every module is a .mpy
    return device


def run(
    micropython: str, device: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [micropython, "-X", f"heapsize={MPY_HEAP}", *args],
        cwd=device,
        env={
            **os.environ,
            "MICROPYPATH": f"{device}:.frozen",
        },  # the bundle, then built-ins, as on an ESP32
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_xtensawin_bytecode_carries_no_machine_code(runnable: Path) -> None:
    assert [p.name for p in runnable.rglob("*.mpy") if native_arch(p)] == []


def test_every_module_imports_from_its_mpy(runnable: Path, micropython_bin: str) -> None:
    modules = sorted(
        ".".join(p.relative_to(runnable).with_suffix("").parts)
        for p in runnable.rglob("*.mpy")
        if not p.name.startswith("esp32_")  # those import `machine`; type-checked instead
    )
    assert "app" in modules and f"boards.{SIM_BOARD}" in modules
    # One at a time, dropped after: the firmware never holds its update and signature
    # code (ota, commands, ed25519, sha512) beside everything else in 64 KB.
    code = (
        f"import gc, sys\nfor m in {modules!r}:\n __import__(m)\n print('ok', m)\n"
        " for k in [k for k in sys.modules if k not in ('gc', 'sys')]:\n  del sys.modules[k]\n"
        " gc.collect()\n"
    )
    done = run(micropython_bin, runnable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [w for m in modules for w in ("ok", m)]


def test_the_bundle_boots_and_gets_its_telemetry_acknowledged(
    runnable: Path, micropython_bin: str, shared_broker: Broker, tmp_path: Path
) -> None:
    device = tmp_path / "flash"
    shutil.copytree(runnable, device)
    (device / "config.json").write_text(
        '{"device_id": "bundle-run-1", "site": "lab",'
        f' "broker": {{"host": "{shared_broker.host}", "port": {shared_broker.port}}}}}'
    )
    done = run(micropython_bin, device, "main.py")  # stdin closed: drain the outbox, then stop
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("screen idle") for line in lines), lines
    assert any(line.startswith("acked t 1 ") for line in lines), lines
