"""CI proof: the ESP32 board layer type-checks against micropython-esp32-stubs (mypy).

How: firmware/tools/stubcheck.py (also `.venv/bin/python -m firmware.tools.stubcheck`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.tools import bundle, stubcheck


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for these tests: the stubs are analysed once, not per test."""
    return tmp_path_factory.mktemp("mypy-cache")


def test_every_esp32_board_type_checks_against_the_stubs(cache: Path) -> None:
    boards = stubcheck.board_files()
    assert {b.name for b in boards} >= {f"{bundle.DEFAULT_BOARD}.py"}
    done = stubcheck.check(boards, bundle.DEVICE_DIR, cache=cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found")


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
    (tmp_path / "boards").mkdir(parents=True)
    (tmp_path / "boards" / "__init__.py").write_text("")  # as in firmware/device/boards
    path = tmp_path / "boards" / "esp32_test.py"
    path.write_text(body)
    return path


def test_correct_hardware_calls_pass(tmp_path: Path, cache: Path) -> None:
    done = stubcheck.check([write_board(tmp_path, GOOD)], tmp_path, cache=cache)
    assert done.returncode == 0, done.stdout


def test_a_wrong_hardware_call_fails(tmp_path: Path, cache: Path) -> None:
    bad = GOOD + "\ndef blink():\n    machine.Pin(2, machine.Pin.OUT).valuex(1)\n"
    done = stubcheck.check([write_board(tmp_path, bad)], tmp_path, cache=cache)
    assert done.returncode == 1
    assert 'esp32_test.py:16: error: "Pin" has no attribute "valuex"' in done.stdout


def test_cpython_only_modules_are_not_there(tmp_path: Path, cache: Path) -> None:
    done = stubcheck.check([write_board(tmp_path, "import pathlib\n")], tmp_path, cache=cache)
    assert done.returncode == 1
    assert 'module named "pathlib"' in done.stdout


def test_own_list_inference_is_not_counted_but_hardware_arguments_are(
    tmp_path: Path, cache: Path
) -> None:
    lists = GOOD + "\ndef events():\n    got = []\n    got.append(('a', 1, None))\n"
    lists += "    got.append(('b',))\n    return got\n"
    done = stubcheck.check(
        [write_board(tmp_path / "lists", lists)], tmp_path / "lists", cache=cache
    )
    assert done.returncode == 0, done.stdout
    assert "(1 about the board's own lists not counted)" in done.stdout
    wrong = lists + "\ndef slow_bus():\n    return machine.I2C(0, freq='fast')\n"
    done = stubcheck.check(
        [write_board(tmp_path / "wrong", wrong)], tmp_path / "wrong", cache=cache
    )
    assert done.returncode == 1
    assert 'No overload variant of "I2C" matches argument types "int", "str"' in done.stdout
