"""`nps-edge device add|list|revoke` and `nps-edge token create|list|revoke` through the command."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest


def run(bin_: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nps.db'}"


def test_device_add_list_revoke(nps_edge_bin: str, db: str) -> None:
    added = run(nps_edge_bin, "device", "add", "--db", db, "--site", "store-1")
    assert added.returncode == 0, added.stderr
    assert added.stdout.count("\n") == 1  # one JSON line, nothing else
    login = json.loads(added.stdout)
    assert set(login) == {"device", "site", "username", "password"}
    assert (
        re.fullmatch(r"nps-[0-9a-f]{6}", login["device"]) and login["username"] == login["device"]
    )
    assert login["site"] == "store-1" and len(login["password"]) >= 32
    named = json.loads(
        run(
            nps_edge_bin, "device", "add", "--db", db, "--site", "store-2", "--id", "nps-b00001"
        ).stdout
    )
    assert named["device"] == "nps-b00001"
    revoked = run(nps_edge_bin, "device", "revoke", "--db", db, "--id", "nps-b00001")
    assert revoked.returncode == 0 and revoked.stdout == ""
    listed = run(nps_edge_bin, "device", "list", "--db", db, "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["device"], r["site"], r["revoked_at"] is not None) for r in rows] == sorted(
        [(login["device"], "store-1", False), ("nps-b00001", "store-2", True)]
    )
    table = run(nps_edge_bin, "device", "list", "--db", db).stdout
    for secret in (login["password"], named["password"], "$7$"):
        assert secret not in listed.stdout and secret not in table


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["device", "add", "--site", "Store 1"], "site 'Store 1' does not match"),
        (["device", "add", "--site", "s", "--id", "NPS_1"], "device id 'NPS_1' does not match"),
        (["device", "revoke", "--id", "nps-nobody"], "no registered device 'nps-nobody'"),
        (["token", "create", "--role", "gateway", "--name", "gw"], "needs --site"),
        (["token", "create", "--role", "root", "--name", "x"], "role must be one of"),
        (["token", "revoke", "--name", "nobody"], "no live token named 'nobody'"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    nps_edge_bin: str, db: str, args: list[str], says: str
) -> None:
    out = run(nps_edge_bin, *args[:2], "--db", db, *args[2:])
    assert (out.returncode, out.stdout) == (2, "")
    assert says in out.stderr and "Traceback" not in out.stderr


def test_a_duplicate_device_exits_2_and_a_bad_database_1(nps_edge_bin: str, db: str) -> None:
    args = ["device", "add", "--db", db, "--site", "s", "--id", "nps-dup001"]
    assert run(nps_edge_bin, *args).returncode == 0
    again = run(nps_edge_bin, *args)
    assert again.returncode == 2 and "already registered" in again.stderr
    broken = run(
        nps_edge_bin, "device", "list", "--db", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"
    )
    assert broken.returncode == 1 and "cannot use the database" in broken.stderr
    assert "hunter2" not in broken.stderr  # the URL's password is not echoed


def test_token_list_shows_use_and_revocation_never_the_secret(nps_edge_bin: str, db: str) -> None:
    gw = run(nps_edge_bin, "token", "create", "--db", db, "--role", "gateway", "--site",
             "store-1", "--name", "gw-1").stdout.strip()  # fmt: skip
    viewer = run(nps_edge_bin, "token", "create", "--db", db, "--role", "viewer", "--name",
                 "vera").stdout.strip()  # fmt: skip
    assert gw.startswith("npsg_") and viewer.startswith("npsv_")
    assert run(nps_edge_bin, "token", "revoke", "--db", db, "--name", "vera").returncode == 0
    listed = run(nps_edge_bin, "token", "list", "--db", db, "--json").stdout
    rows = {r["name"]: r for r in map(json.loads, listed.splitlines())}
    assert set(rows["gw-1"]) == {"name", "role", "site", "created_at", "last_used_at", "revoked_at"}
    assert (rows["gw-1"]["role"], rows["gw-1"]["site"], rows["gw-1"]["revoked_at"]) == (
        "gateway", "store-1", None
    )  # fmt: skip
    assert rows["vera"]["revoked_at"] is not None
    table = run(nps_edge_bin, "token", "list", "--db", db).stdout
    assert "LAST USED" in table and "gw-1" in table
    for secret in (gw, viewer, gw[5:20]):
        assert secret not in listed and secret not in table
