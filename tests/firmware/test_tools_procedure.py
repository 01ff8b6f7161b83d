"""The field guide's procedure end to end, on the simulator's board profile: build, flash,
provision, verify through the CLI onto a stand-in board, then boot what landed there with
the real MicroPython binary and a real broker, and see its first telemetry acknowledged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer
from typer.testing import CliRunner

from firmware import cli
from firmware.tools import serial_tools as st
from firmware.tools.romfs import MPY_HEAP  # code from .mpy files: in the heap
from nps_edge.broker import Broker

PORT = "/dev/ttyUSB0"


def test_build_flash_provision_verify_then_boot(
    tmp_path: Path, micropython_bin: str, shared_broker: Broker
) -> None:
    board = st.LocalDevice(tmp_path / "board", micropython_bin)
    board.root.mkdir()
    app = typer.Typer()
    app.add_typer(cli.firmware_app(lambda dry_run: board), name="firmware")

    def run(*args: str) -> None:
        result = CliRunner().invoke(app, ["firmware", *args], env={})
        assert result.exit_code == 0, f"{args[0]}: {result.output}"

    out = str(tmp_path / "bundle")
    run("build", "--board", "unix_sim", "--out", out)
    run("flash", "--port", PORT, "--bundle", out)
    run(
        "provision", "--port", PORT,
        "--device-id", "field-test-1", "--site", "lab", "--wifi-ssid", "lab-wifi",
        "--broker", f"{shared_broker.host}:{shared_broker.port}",
    )  # fmt: skip
    run("verify", "--port", PORT, "--bundle", out)

    done = subprocess.run(
        [micropython_bin, "-X", f"heapsize={MPY_HEAP}", "main.py"],
        cwd=board.root,
        env={**os.environ, "MICROPYPATH": f"{board.root}:.frozen"},
        input="",  # stdin closed: send what is queued, then stop
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    acked = [line for line in done.stdout.splitlines() if line.startswith("acked t 1 ")]
    assert acked and '"device": "field-test-1"' in acked[0] and '"site": "lab"' in acked[0]
