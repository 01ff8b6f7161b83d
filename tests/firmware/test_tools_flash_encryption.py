"""The field guide's flash-encryption commands (docs/field-guide.md, section 7), run as
written without a chip.

espefuse and espsecure have no --dry-run (esptool 5.6: `--help` of each). What exists
and is used: espefuse's virtual eFuses (`--virt --path-efuse-file FILE`, kept across
commands) in place of `--port`, with `BURN` typed on stdin; espsecure works on files
and runs for real; esptool is run against a port that does not exist, which it reports
only after it accepted the arguments (as tests/firmware/test_tools_real_cli_syntax.py).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "field-guide.md").read_text()
BIN = Path(sys.executable).parent
PORT = "/dev/ttyUSB0"
NO_PORT = "/dev/nps-edge-no-such-port"
IMAGES = {"bootloader.bin": 0x1000, "partition-table.bin": 0x8000, "micropython.bin": 0x10000}


def section_commands() -> list[list[str]]:
    """Every command line of the `sh` blocks in section 7, comments stripped."""
    start = GUIDE.index("## 7. Flash encryption and NVS encryption")
    section = GUIDE[start : GUIDE.index("\n## ", start + 1)]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def tool(argv: list[str]) -> list[str]:
    if argv[0] not in ("espefuse", "espsecure", "esptool"):
        raise AssertionError(f"the guide shows a command the test cannot run: {argv}")
    path = BIN / argv[0]
    if not path.exists():
        pytest.skip(f"{argv[0]} is not installed in this environment (make venv installs it)")
    return [str(path), *argv[1:]]


def with_virtual_efuses(argv: list[str], efuses: Path) -> list[str]:
    at = argv.index("--port")
    assert argv[at + 1] == PORT, argv
    return [*argv[:at], "--virt", "--path-efuse-file", str(efuses), *argv[at + 2 :]]


def run_guide(folder: Path) -> tuple[list[list[str]], str]:
    """Runs the section's commands in order in folder; returns what ran and the last output."""
    efuses = folder / "efuses.bin"
    umask: int | None = None
    ran: list[list[str]] = []
    output = ""
    for argv in section_commands():
        if argv[0] == "umask":
            umask = int(argv[1], 8)
            continue
        command = tool(argv)
        if argv[0] == "espefuse":
            command = with_virtual_efuses(command, efuses)
        elif argv[0] == "esptool":
            command = [NO_PORT if part == PORT else part for part in command]
        done = subprocess.run(
            command,
            cwd=folder,
            input="BURN\n",
            capture_output=True,
            text=True,
            timeout=120,
            umask=-1 if umask is None else umask,
            env={**os.environ, "COLUMNS": "200"},
        )
        output = done.stdout + done.stderr
        if argv[0] == "esptool":
            assert done.returncode != 0 and f"Could not open {NO_PORT}" in output, output
        else:
            assert done.returncode == 0, f"{shlex.join(argv)}:\n{output[-2000:]}"
        ran.append(command)
    return ran, output


def efuse(summary: str, name: str) -> str:
    match = re.search(rf"^{name} \(BLOCK0\).*= (.+)$", summary, re.M)
    assert match, f"{name} is not in the summary"
    return match.group(1).strip()


def test_the_guide_shows_the_procedure_in_order() -> None:
    tools = [argv[0] + " " + next(a for a in argv[1:] if not a.startswith("-") and a not in (
        "esp32", PORT)) for argv in section_commands() if argv[0] != "umask"]  # fmt: skip
    assert tools[0] == "espefuse summary" and tools[-1] == "espefuse summary"
    assert tools.index("espsecure generate-flash-encryption-key") < tools.index("espefuse burn-key")
    assert tools.index("espefuse burn-key") < tools.index("espefuse burn-efuse")
    assert tools.index("esptool erase-flash") < tools.index("esptool write-flash")
    assert tools.count("espsecure encrypt-flash-data") == len(IMAGES)
    assert section_commands()[0] == ["umask", "077"]


def test_the_guides_commands_run_and_leave_a_release_mode_chip(tmp_path: Path) -> None:
    images = {name: os.urandom(4096 + 16 * n) for n, name in enumerate(IMAGES)}
    for name, body in images.items():
        (tmp_path / name).write_bytes(body)
    ran, summary = run_guide(tmp_path)
    assert len(ran) == len(section_commands()) - 1  # all but `umask`
    key = tmp_path / "nps-1f2e3d.key"
    assert key.stat().st_size == 32 and key.stat().st_mode & 0o777 == 0o600
    # The last summary: encryption on and locked, the serial bootloader's paths closed.
    assert efuse(summary, "FLASH_CRYPT_CNT") == "1 R/- (0b0000001)"
    assert efuse(summary, "FLASH_CRYPT_CONFIG").startswith("15 ")
    for name in ("DISABLE_DL_ENCRYPT", "DISABLE_DL_DECRYPT", "DISABLE_DL_CACHE", "JTAG_DISABLE"):
        assert efuse(summary, name).startswith("True"), name
    key_block = re.search(r"^BLOCK1 \(BLOCK1\) +Flash encryption key\s*\n\s*= (.*)$", summary, re.M)
    assert key_block and key_block.group(1).split()[-1] == "-/-", "the key is readable or writable"
    assert set(key_block.group(1).split()[:-1]) == {"??"}, "the key can be read back"
    assert efuse(summary, "RD_DIS").startswith("1 ")
    # Each image was encrypted for its address with the key (the chip decrypts it the same way).
    for name, address in IMAGES.items():
        encrypted = tmp_path / name.replace(".bin", ".enc.bin")
        assert encrypted.read_bytes() != images[name]
        back = tmp_path / f"{name}.back"
        subprocess.run(
            [*tool(["espsecure"]), "decrypt-flash-data", "--keyfile", str(key), "--address",
             hex(address), "--output", str(back), str(encrypted)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        assert back.read_bytes() == images[name], name
