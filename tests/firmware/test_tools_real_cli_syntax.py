"""The command lines we build are ones the installed esptool and mpremote accept.

No board here: esptool is run for real against a port that does not exist (it checks
its arguments before opening the port, so the port error proves the syntax); mpremote
opens the port before parsing later commands, so its own argument parsers check ours.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from mpremote import main as mpremote_main

from firmware.tools import install, verify
from firmware.tools import serial_tools as st

NO_PORT = "/dev/nps-edge-no-such-port"


@pytest.mark.parametrize(
    "command",
    [
        lambda image: st.erase_flash(NO_PORT),
        lambda image: st.write_flash(NO_PORT, image),
        lambda image: st.write_flash(NO_PORT, image, chip="esp32s3", baud=921600),
    ],
    ids=["erase", "write", "write-s3"],
)
def test_esptool_accepts_the_arguments(
    command: Callable[[Path], list[str]], tmp_path: Path
) -> None:
    image = tmp_path / "micropython.bin"  # esptool checks that the image exists
    image.write_bytes(b"\xe9" + bytes(15))
    done = subprocess.run(command(image), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"Could not open {NO_PORT}" in done.stdout + done.stderr, done.stdout + done.stderr


def parse_mpremote(args: list[str]) -> list[tuple[str, argparse.Namespace]]:
    """mpremote's own parsing loop (mpremote.main.main) without running any command."""
    parsed = []
    remaining = list(args)
    mpremote_main.prepare_command_expansions(SimpleNamespace(commands={}))
    while remaining:
        mpremote_main.do_command_expansion(remaining)
        command = remaining.pop(0)
        _, make_parser = mpremote_main._COMMANDS[command]
        parser = make_parser()
        parser.add_argument("next_command", nargs=argparse.REMAINDER)
        parser.exit_on_error = False
        namespace = parser.parse_args(remaining)
        parsed.append((command, namespace))
        remaining = namespace.next_command
    return parsed


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (st.copy_to_device(NO_PORT, Path("build/firmware/app.mpy"), "app.mpy"), "fs"),
        (st.exec_on_device(NO_PORT, verify.DEVICE_LISTING), "exec"),
        (st.exec_on_device(NO_PORT, install.make_dirs_code(["boards"])), "exec"),
        (st.reset_device(NO_PORT), "exec"),
        (st.exec_on_device(NO_PORT, "pass", wait_s=2), "exec"),
    ],
    ids=["cp", "listing", "mkdir", "reset", "wait-then-exec"],
)
def test_mpremote_parses_the_arguments(argv: list[str], command: str) -> None:
    assert argv[:3] == list(st.MPREMOTE)
    (connect, target), *_, (name, args) = parse_mpremote(argv[3:])
    assert (connect, target.device) == ("connect", [NO_PORT])
    assert name == command
    if name == "fs":
        assert (args.command, args.force, args.path) == (
            ["cp"],
            True,
            ["build/firmware/app.mpy", ":app.mpy"],
        )


def test_mpremote_fails_cleanly_without_the_board() -> None:
    done = subprocess.run(
        st.exec_on_device(NO_PORT, "print(1)"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"failed to access {NO_PORT}" in done.stderr
