"""provision --login: the broker login from `nps-edge device add` goes into the device's
config.json; the tool never prints the password, and a laptop copy is 0600."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from firmware import cli
from firmware import serial_tools as st

PORT = "/dev/ttyUSB0"
PASSWORD = "Zq8-only-on-this-device-5xT"
# The JSON line `nps-edge device add --db URL --site store-042` prints (contract).
LOGIN = {"device": "nps-a1b2c3", "site": "store-042", "username": "nps-a1b2c3"}
SITE = ["--wifi-ssid", "shop-wifi", "--broker", "gw.store-042.lan:8883", "--tls"]


def login_line(**changes: str) -> str:
    return json.dumps({**LOGIN, "password": PASSWORD, **changes}) + "\n"


def invoke(
    runner: st.Runner, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    app = typer.Typer()
    app.add_typer(cli.firmware_app(lambda dry_run: runner), name="firmware")
    return CliRunner().invoke(app, ["firmware", *args], env=env or {}, input=stdin)


def never_shown(result: Result) -> None:
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr


def test_login_from_stdin_goes_into_the_config(board: st.LocalDevice) -> None:
    result = invoke(board, "provision", "--port", PORT, *SITE, "--login", "-", stdin=login_line())
    assert result.exit_code == 0, result.output
    written = json.loads((board.root / "config.json").read_text())
    assert written["device_id"] == "nps-a1b2c3" and written["site"] == "store-042"
    assert written["broker"]["username"] == "nps-a1b2c3"
    assert written["broker"]["password"] == PASSWORD
    assert "device id: nps-a1b2c3" in result.stdout
    never_shown(result)


def test_login_file_with_a_private_laptop_copy(tmp_path: Path) -> None:
    login = tmp_path / "nps-a1b2c3.json"
    login.write_text("registered\n" + login_line())  # the JSON line is the last line
    save = tmp_path / "kept.json"
    save.write_text("{}")
    save.chmod(0o644)  # an older copy, world-readable: made private before the write
    printed: list[str] = []
    dry = st.DryRunRunner(echo=printed.append)
    args = ["provision", "--port", PORT, *SITE, "--login", str(login), "--save", str(save)]
    result = invoke(dry, *args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(save.stat().st_mode) == 0o600
    assert json.loads(save.read_text())["broker"]["password"] == PASSWORD
    assert '"password": "********"' in result.stdout
    never_shown(result)
    assert all(PASSWORD not in line for line in printed)


@pytest.mark.parametrize(
    ("args", "line", "message"),
    [
        (["--site", "store-7"], login_line(), "site is given as an option but the login has"),
        ([], login_line(username="nps-ffffff"), "is for user 'nps-ffffff' but device 'nps-a1b2c3'"),
        ([], json.dumps(LOGIN), "has no password"),
        ([], "not json " + PASSWORD, "is not the JSON line of `nps-edge device add`"),
        ([], login_line(site="Store 42"), "site 'Store 42'"),
    ],
)  # fmt: skip
def test_a_wrong_login_is_refused_without_showing_it(
    board: st.LocalDevice, args: list[str], line: str, message: str
) -> None:
    result = invoke(board, "provision", "--port", PORT, *SITE, *args, "--login", "-", stdin=line)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert board.ran == []
    never_shown(result)


def test_a_login_and_another_mqtt_password_disagree(board: st.LocalDevice) -> None:
    env = {"NPS_EDGE_MQTT_PASSWORD": "another"}
    args = ["provision", "--port", PORT, *SITE, "--login", "-"]
    result = invoke(board, *args, stdin=login_line(), env=env)
    assert result.exit_code == 2
    assert "broker.password is given as an option but the login has the password" in result.stderr
    assert board.ran == []
    never_shown(result)
    assert "another" not in result.stdout + result.stderr


def test_a_missing_login_file_is_named(board: st.LocalDevice, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = invoke(board, "provision", "--port", PORT, *SITE, "--login", str(missing))
    assert result.exit_code == 2
    assert f"cannot read the login {missing}" in result.stderr


def test_the_login_of_a_real_device_add_is_what_the_device_gets(
    board: st.LocalDevice, tmp_path: Path, nps_edge_bin: str
) -> None:
    """Steps 1 and 4 of the field guide: `device add` piped into `provision --login -`."""
    db = f"sqlite:///{tmp_path / 'server.db'}"
    added = subprocess.run(
        [nps_edge_bin, "device", "add", "--db", db, "--site", "store-042"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    login = json.loads(added.stdout)
    result = invoke(board, "provision", "--port", PORT, *SITE, "--login", "-", stdin=added.stdout)
    assert result.exit_code == 0, result.output
    written = json.loads((board.root / "config.json").read_text())
    assert written["device_id"] == login["device"] and written["site"] == "store-042"
    assert written["broker"]["username"] == login["username"] == login["device"]
    assert written["broker"]["password"] == login["password"]
    assert login["password"] not in result.stdout + result.stderr
