"""CI proof: the ESP32 board layer type-checks against micropython-esp32-stubs (mypy).

How: firmware/stubcheck.py (also `.venv/bin/python -m firmware.stubcheck`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware import bundle, stubcheck

BOARDS = stubcheck.board_files()


@pytest.mark.parametrize("board", BOARDS, ids=[b.name for b in BOARDS])
def test_board_type_checks_against_the_esp32_stubs(board: Path) -> None:
    done = stubcheck.check([board], bundle.DEVICE_DIR)
    assert done.returncode == 0, done.stdout + done.stderr


GOOD = """\
import machine
import network
import esp32
from micropython import const

SCL = const(22)

def make():
    i2c = machine.I2C(0, scl=machine.Pin(SCL), sda=machine.Pin(21), freq=400000)
    wlan = network.WLAN(network.STA_IF)
    adc = machine.ADC(machine.Pin(35))
    adc.atten(machine.ADC.ATTN_11DB)
    return i2c, wlan, adc.read_uv() // 1000, esp32.raw_temperature(), machine.reset_cause()
"""


def write_board(tmp_path: Path, body: str) -> Path:
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "__init__.py").write_text("")  # as in firmware/device/boards
    path = tmp_path / "boards" / "esp32_test.py"
    path.write_text(body)
    return path


def test_correct_hardware_calls_pass(tmp_path: Path) -> None:
    done = stubcheck.check([write_board(tmp_path, GOOD)], tmp_path)
    assert done.returncode == 0, done.stdout


def test_a_wrong_hardware_call_fails(tmp_path: Path) -> None:
    bad = GOOD + "\ndef blink():\n    machine.Pin(2, machine.Pin.OUT).valuex(1)\n"
    done = stubcheck.check([write_board(tmp_path, bad)], tmp_path)
    assert done.returncode == 1
    assert 'esp32_test.py:16: error: "Pin" has no attribute "valuex"' in done.stdout


def test_cpython_only_modules_are_not_there(tmp_path: Path) -> None:
    done = stubcheck.check([write_board(tmp_path, "import pathlib\n")], tmp_path)
    assert done.returncode == 1
    assert 'module named "pathlib"' in done.stdout
