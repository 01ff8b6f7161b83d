"""provision: config.json built from options or a file, checked by the device's own rules
(firmware/device/config.py), written with mpremote, read back by SHA-256, and accepted
by the real device code under the MicroPython unix port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from firmware import cli
from firmware.tools import bundle
from firmware.tools import provision as prov
from firmware.tools import serial_tools as st
from tests.conftest import missing

PORT = "/dev/ttyUSB0"
MPREMOTE = [sys.executable, "-m", "mpremote", "connect", PORT]
FIELD = [
    "--site", "store-042",
    "--wifi-ssid", "shop-wifi",
    "--broker", "gw.store-042.lan:8883",
    "--tls",
    "--username", "nps-a1b2c3",
]  # fmt: skip
# Passwords only ever come from the environment (or a file), never from argv.
SECRETS = {"NPS_EDGE_WIFI_PASSWORD": "hunter22", "NPS_EDGE_MQTT_PASSWORD": "s3cret"}


def invoke(runner: st.Runner, *args: str) -> Result:
    app = typer.Typer()
    app.add_typer(cli.firmware_app(lambda dry_run: runner), name="firmware")
    return CliRunner().invoke(app, ["firmware", *args], env=SECRETS)


def test_writes_exactly_the_given_settings(board: st.LocalDevice) -> None:
    result = invoke(board, "provision", "--port", PORT, *FIELD, "--reason", "wait=Waiting time")
    assert result.exit_code == 0, result.output
    assert json.loads((board.root / "config.json").read_text()) == {
        "site": "store-042",
        "wifi": {"ssid": "shop-wifi", "password": "hunter22"},
        "broker": {
            "host": "gw.store-042.lan",
            "port": 8883,
            "tls": True,
            "username": "nps-a1b2c3",
            "password": "s3cret",
        },
        "reasons": [{"code": "wait", "label": "Waiting time"}],
    }
    copy, read_back, reset = board.ran
    assert copy[:8] == [*MPREMOTE, "fs", "cp", "--force"] and copy[-1] == ":config.json"
    assert read_back[5] == "exec"
    assert reset == [*MPREMOTE, "reset"]


def test_the_device_code_accepts_what_was_written(
    board: st.LocalDevice, micropython_bin: str
) -> None:
    assert invoke(board, "provision", "--port", PORT, *FIELD).exit_code == 0
    code = (
        "import config\n"
        "c = config.load('config.json', 'nps-a1b2c3')\n"
        "print(c['device_id'], c['site'], c['broker']['port'], c['broker']['tls'])\n"
    )
    done = subprocess.run(
        [micropython_bin, "-X", "heapsize=64k", "-c", code],
        cwd=board.root,
        env={**os.environ, "MICROPYPATH": f"{bundle.DEVICE_DIR}:.frozen"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.split() == ["nps-a1b2c3", "store-042", "8883", "True"], done.stderr


def test_leaving_out_device_id_leaves_the_mac_default(board: st.LocalDevice) -> None:
    assert invoke(board, "provision", "--port", PORT, *FIELD).exit_code == 0
    assert "device_id" not in json.loads((board.root / "config.json").read_text())
    assert (
        invoke(board, "provision", "--port", PORT, *FIELD, "--device-id", "kiosk-7").exit_code == 0
    )
    assert json.loads((board.root / "config.json").read_text())["device_id"] == "kiosk-7"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "Store 42"], "error: config: site 'Store 42': "),
        (["--device-id", "ab"], "error: config: device_id 'ab': "),
        (["--broker", "gw:http"], "--broker must be HOST or HOST:PORT, got 'gw:http'"),
        (["--reason", "wait"], "--reason must be CODE=LABEL, got 'wait'"),
        (["--broker", "gw:70000"], "broker.port must be an integer 1..65535, got 70000"),
        (["--reason", "a=A", "--reason", "b=B", "--reason", "c=C", "--reason", "d=D",
          "--reason", "e=E"], "reasons must be a list of at most 4"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_before_touching_the_board(
    board: st.LocalDevice, args: list[str], message: str
) -> None:
    result = invoke(board, "provision", "--port", PORT, *FIELD, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert board.ran == []


def test_a_field_device_needs_wifi_and_a_broker(board: st.LocalDevice) -> None:
    result = invoke(board, "provision", "--port", PORT, "--site", "s1", "--broker", "gw")
    assert result.exit_code == 2
    assert result.stderr == "error: config: wifi.ssid is required on a field device\n"


def test_config_file_typos_are_named(board: st.LocalDevice, tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"site": "s1", "wifi": {"ssid": "w", "pasword": "x"}}))
    result = invoke(board, "provision", "--port", PORT, "--config", str(path), "--broker", "gw")
    assert result.exit_code == 2
    assert "error: config: unknown setting wifi.pasword" in result.stderr


def test_options_override_the_config_file(board: st.LocalDevice, tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"site": "old", "timeouts": {"prompt_s": 45}}))
    result = invoke(board, "provision", "--port", PORT, "--config", str(path), *FIELD)
    assert result.exit_code == 0, result.output
    written = json.loads((board.root / "config.json").read_text())
    assert (written["site"], written["timeouts"]) == ("store-042", {"prompt_s": 45})


def test_check_only_needs_no_board_and_hides_passwords(tmp_path: Path) -> None:
    save = tmp_path / "kept.json"
    result = invoke(st.DryRunRunner(), "provision", *FIELD, "--check-only", "--save", str(save))
    assert result.exit_code == 0, result.output
    assert "hunter22" not in result.stdout and "s3cret" not in result.stdout
    assert '"password": "********"' in result.stdout
    assert result.stdout.endswith("config ok\n")
    assert json.loads(save.read_text())["wifi"]["password"] == "hunter22"
    assert save.stat().st_mode & 0o777 == 0o600


def test_dry_run_prints_the_copy_and_reset(tmp_path: Path) -> None:
    printed: list[str] = []
    dry = st.DryRunRunner(echo=printed.append)
    result = invoke(dry, "provision", "--port", PORT, *FIELD, "--dry-run")
    assert result.exit_code == 0, result.output
    assert len(printed) == 2
    assert " fs cp --force " in printed[0] and printed[0].endswith(" :config.json")
    assert printed[1].endswith(f"connect {PORT} reset")


class Garbling(st.LocalDevice):
    """A board whose filesystem keeps a different file than was sent."""

    def _copy(self, local: Path, remote: str) -> st.Result:
        (self.root / remote).write_text("{}")
        return st.Result(0)


def test_a_bad_read_back_is_reported(tmp_path: Path, micropython_bin: str) -> None:
    board = Garbling(tmp_path, micropython_bin)
    result = invoke(board, "provision", "--port", PORT, *FIELD)
    assert result.exit_code == 1
    assert "config.json on the device differs from what was written" in result.stderr
    assert board.ran[-1][5] == "exec"  # no reset into a bad config


def test_flash_with_config_writes_it_before_main(board: st.LocalDevice, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    bundle.build(out, compiler=bundle.MpyCross(), board="unix_sim")
    config = tmp_path / "store.json"
    config.write_text(
        prov.render(prov.with_settings({}, {"site": "s1", "wifi.ssid": "w", "broker.host": "gw"}))
    )
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out), "--config", str(config))
    assert result.exit_code == 0, result.output
    targets = [argv[-1] for argv in board.ran if argv[5:7] == ["fs", "cp"]]
    assert targets[-2:] == [":config.json", ":main.py"]
    assert (board.root / "config.json").read_text() == config.read_text()


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl", "apt-get install openssl")
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=nps-edge test CA", "-keyout", str(folder / "ca.key"),
         "-out", str(folder / "ca.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return folder / "ca.crt"


def test_ca_certificate_goes_into_the_config(board: st.LocalDevice, ca_pem: Path) -> None:
    result = invoke(board, "provision", "--port", PORT, *FIELD, "--ca", str(ca_pem))
    assert result.exit_code == 0, result.output
    written = json.loads((board.root / "config.json").read_text())
    assert written["broker"]["ca"] == ca_pem.read_text()
    assert f'"ca": "<PEM certificate, {len(ca_pem.read_text())} bytes>"' in result.stdout
    assert "warning" not in result.stderr


def test_tls_without_a_ca_warns(board: st.LocalDevice) -> None:
    result = invoke(board, "provision", "--port", PORT, *FIELD)
    assert result.exit_code == 0
    assert "warning: TLS without --ca encrypts but does not check the broker's identity" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not a certificate\n", "must hold exactly one PEM certificate"),
        ("twice", "must hold exactly one PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a usable"),
    ],
)
def test_a_bad_ca_file_is_refused(
    board: st.LocalDevice, ca_pem: Path, tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "bad.pem"
    path.write_text(ca_pem.read_text() * 2 if body == "twice" else body)
    result = invoke(board, "provision", "--port", PORT, *FIELD, "--ca", str(path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert board.ran == []


def test_a_ca_needs_tls(board: st.LocalDevice, ca_pem: Path) -> None:
    result = invoke(board, "provision", "--port", PORT, *FIELD, "--no-tls", "--ca", str(ca_pem))
    assert result.exit_code == 2
    assert "broker.ca is set but broker.tls is not: add --tls" in result.stderr


FAKE_WIFI = """\
STA_IF = 0
class WLAN:
    def __init__(self, interface):
        pass
    def config(self, key):
        return b"\\x24\\x6f\\x28\\xa1\\xb2\\xc3"
"""


def test_the_mac_default_id_is_shown_so_the_device_can_be_labelled(
    board: st.LocalDevice,
) -> None:
    (board.root / "network.py").write_text(FAKE_WIFI)  # the ESP32's network module, faked
    result = invoke(board, "provision", "--port", PORT, *FIELD)
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("device id: nps-a1b2c3 (from the MAC)\n")
    result = invoke(board, "provision", "--port", PORT, *FIELD, "--device-id", "kiosk-7")
    assert result.stdout.endswith("device id: kiosk-7\n")


@pytest.mark.parametrize("option", ["--password", "--wifi-password"])
def test_a_password_is_never_an_option(board: st.LocalDevice, option: str) -> None:
    """A command line is readable by every user of the laptop (ps, /proc/PID/cmdline)."""
    result = invoke(board, "provision", "--port", PORT, *FIELD, option, "s3cret")
    assert result.exit_code == 2 and f"No such option: {option}" in result.stderr
    assert board.ran == []
