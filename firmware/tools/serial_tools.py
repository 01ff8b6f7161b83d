"""esptool and mpremote command lines, run through a `Runner` so tests capture them exactly.

The command builders are pure (argv lists); `SubprocessRunner` runs them for real with the
tools' own progress output on the terminal, `DryRunRunner` only prints them, and
`LocalDevice` stands in for a board: a folder as its filesystem and the MicroPython unix
port as its interpreter, answering the same command lines mpremote would.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

ESPTOOL = (sys.executable, "-m", "esptool")
MPREMOTE = (sys.executable, "-m", "mpremote")
DEFAULT_CHIP = "esp32"
DEFAULT_BAUD = 460800
# Where the MicroPython image starts: after the second-stage bootloader slot on the
# original ESP32 and S2, at 0 on the newer chips (MicroPython's download page says the same).
IMAGE_OFFSET = {
    "esp32": "0x1000",
    "esp32s2": "0x1000",
    "esp32s3": "0x0",
    "esp32c3": "0x0",
    "esp32c6": "0x0",
}


class ToolError(Exception):
    """esptool or mpremote failed or could not be started."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    """Runs one command line. `capture` returns its stdout instead of showing it."""

    def run(self, argv: Sequence[str], *, capture: bool = False) -> Result: ...


def erase_flash(port: str, chip: str = DEFAULT_CHIP) -> list[str]:
    return [*ESPTOOL, "--chip", chip, "--port", port, "erase-flash"]


def write_flash(
    port: str, image: Path, chip: str = DEFAULT_CHIP, baud: int = DEFAULT_BAUD
) -> list[str]:
    if chip not in IMAGE_OFFSET:
        raise ToolError(f"unknown chip {chip!r} (known: {', '.join(sorted(IMAGE_OFFSET))})")
    return [
        *ESPTOOL,
        "--chip",
        chip,
        "--port",
        port,
        "--baud",
        str(baud),
        "write-flash",
        "--compress",
        IMAGE_OFFSET[chip],
        str(image),
    ]


def mpremote(port: str, *command: str) -> list[str]:
    return [*MPREMOTE, "connect", port, *command]


def copy_to_device(port: str, local: Path, remote: str) -> list[str]:
    # --force: copy even when mpremote thinks the hashes match; verify checks afterwards.
    return mpremote(port, "fs", "cp", "--force", str(local), f":{remote}")


def exec_on_device(port: str, code: str, *, wait_s: float = 0) -> list[str]:
    """Run `code` on the board; `wait_s` first lets a board that was just reset boot."""
    wait = ["sleep", f"{wait_s:g}"] if wait_s else []
    return mpremote(port, *wait, "exec", code)


def reset_device(port: str) -> list[str]:
    return mpremote(port, "reset")


def check(result: Result, what: str) -> Result:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        raise ToolError(f"{what} failed: {reason}")
    return result


class SubprocessRunner:
    """The real thing: the tool's own progress goes straight to the terminal."""

    def run(self, argv: Sequence[str], *, capture: bool = False) -> Result:
        try:
            if capture:
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                return Result(done.returncode, done.stdout, done.stderr)
            return Result(subprocess.run(argv, check=False).returncode)
        except OSError as err:
            raise ToolError(f"cannot run {argv[0]}: {err}") from err


@dataclass
class DryRunRunner:
    """Prints each command line instead of running it."""

    echo: Callable[[str], None] = print
    ran: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, capture: bool = False) -> Result:
        self.ran.append(list(argv))
        self.echo("$ " + shlex.join(argv))
        return Result(0)


@dataclass
class LocalDevice:
    """A stand-in board for mpremote: `root` is its filesystem, `micropython` runs `exec`.

    It understands exactly the mpremote command lines built above and records every
    command it was given; esptool commands are recorded and succeed (there is no flash).
    """

    root: Path
    micropython: str
    ran: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, capture: bool = False) -> Result:
        self.ran.append(list(argv))
        tool = tuple(argv[:3])
        if tool == ESPTOOL:
            return Result(0)
        if tool != MPREMOTE or argv[3] != "connect":
            return Result(2, stderr=f"LocalDevice: not an mpremote command: {argv}")
        command = list(argv[5:])
        if command[:1] == ["sleep"]:
            command = command[2:]  # there is no boot to wait for
        if command[:3] == ["fs", "cp", "--force"]:
            return self._copy(Path(command[3]), command[4].removeprefix(":"))
        if command[:1] == ["exec"]:
            done = subprocess.run(
                [self.micropython, "-c", command[1]],
                cwd=self.root,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            return Result(done.returncode, done.stdout, done.stderr)
        if command == ["reset"]:
            return Result(0)
        return Result(2, stderr=f"LocalDevice: unsupported mpremote command {command}")

    def _copy(self, local: Path, remote: str) -> Result:
        target = self.root / remote
        if not target.parent.is_dir():
            # The real device says the same when the folder was not made first.
            return Result(1, stderr=f"mpremote: cp: destination {remote}: ENOENT")
        shutil.copyfile(local, target)
        return Result(0)
