"""`nps-edge demo` on embedded defaults: amqtt, SQLite, gateway, simulated firmware."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from nps_edge.broker import free_port

pytestmark = pytest.mark.slow


def test_demo_sends_history_and_prints_the_dashboard(
    tmp_path: Path, nps_edge_bin: str, micropython_bin: str
) -> None:
    port = free_port()
    done = subprocess.run(
        [
            nps_edge_bin,
            "demo",
            "--history",
            "2d",
            "--devices",
            "0",
            "--exit-when-ready",
            "--data",
            str(tmp_path / "demo"),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Dashboard:  http://127.0.0.1:{port}/" in done.stdout
    token = re.search(r"Login token \(operator\): (\S+)", done.stdout)
    assert token and len(token.group(1)) > 20
    assert "broker (amqtt)" in done.stderr
    shown = re.search(r"server has all (\d+) prompts", done.stderr)
    assert shown and int(shown.group(1)) > 50, done.stderr[-3000:]
    # Everything it started is stopped again.
    assert "stopping gateway" in done.stderr and "stopping server" in done.stderr


def test_demo_rejects_a_bad_history(nps_edge_bin: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [nps_edge_bin, "demo", "--history", "a month", "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "30d" in done.stderr
