"""`nps-edge token create` and `nps-edge server` through the real command."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(bin_: str, db: str, role: str) -> str:
    out = subprocess.run(
        [bin_, "token", "create", "--db", db, "--role", role, "--name", f"{role}-1"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_token_create_prints_only_the_token(nps_edge_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    out = _token(nps_edge_bin, db, "gateway")
    assert re.fullmatch(r"npsg_[A-Za-z0-9_-]{40,}\n", out)
    bad = subprocess.run(
        [nps_edge_bin, "token", "create", "--db", db, "--role", "admin", "--name", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and bad.stdout == "" and "role" in bad.stderr


def test_every_server_command_has_help(nps_edge_bin: str) -> None:
    for args in (["server", "--help"], ["token", "create", "--help"]):
        out = subprocess.run([nps_edge_bin, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "--db" in out.stdout


@pytest.mark.slow
def test_server_command_serves_ingest_and_nps(nps_edge_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'nps.db'}"
    gw, op = (
        _token(nps_edge_bin, db, "gateway").strip(),
        _token(nps_edge_bin, db, "operator").strip(),
    )
    port = _free_port()
    env = {**os.environ, "NPS_EDGE_LOG": "warning"}
    proc = subprocess.Popen(
        [nps_edge_bin, "server", "--db", db, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.05)
        from tests.server.factory import feedback

        r = httpx.post(
            f"{base}/api/v1/ingest", json={"gateway": "gw", "events": [feedback(seq=1, score=10)]},
            headers={"Authorization": f"Bearer {gw}"},
        )  # fmt: skip
        assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
        nps = httpx.get(f"{base}/api/v1/nps", headers={"Authorization": f"Bearer {op}"}).json()
        assert (nps["n"], nps["nps"]) == (1, 100.0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
