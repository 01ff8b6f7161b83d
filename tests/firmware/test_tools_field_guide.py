"""docs/field-guide.md stays true to the commands: every option it shows exists, every
command has its reference line, every screen it shows is there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from nps_edge.cli import app

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "field-guide.md").read_text()
FIRMWARE: Any = typer.main.get_command(app).commands["firmware"]  # type: ignore[attr-defined]
COMMANDS = sorted(FIRMWARE.commands)


def options_of(command: Any) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def reference_line(name: str) -> str:
    match = re.search(rf"^- `nps-edge firmware {name}(?: [^`]*)?`$", GUIDE, re.M)
    assert match, f"no reference line for `firmware {name}`"
    return match.group(0)


@pytest.mark.parametrize("name", COMMANDS)
def test_reference_lists_exactly_the_options(name: str) -> None:
    shown = set(re.findall(r"--[a-z][a-z0-9-]*(?:/--[a-z][a-z0-9-]*)?", reference_line(name)))
    flat = {part for option in shown for part in option.split("/")}
    real = options_of(FIRMWARE.commands[name]) - {"--help"}
    assert flat == real


@pytest.mark.parametrize("name", COMMANDS)
def test_every_example_uses_real_options(name: str) -> None:
    real = options_of(FIRMWARE.commands[name])
    code = "\n".join(re.findall(r"^```sh\n(.*?)^```", GUIDE, re.M | re.S))
    examples = re.findall(rf"nps-edge firmware {name}\b(.*(?:\\\n.*)*)", code)
    assert examples, f"no example of `firmware {name}`"
    for example in examples:
        for option in re.findall(r"(--[a-z][a-z0-9-]*)", example):
            assert option in real, f"`firmware {name}` has no {option}: {example.strip()}"


def test_every_screen_shown_exists() -> None:
    images = re.findall(r"\]\((screens/[^)]+\.png)\)", GUIDE)
    assert {"screens/prompt.png", "screens/picking-7.png", "screens/reason.png"} <= set(images)
    assert {"screens/thank-you.png", "screens/error.png"} <= set(images)
    for image in images:
        assert (ROOT / "docs" / image).is_file(), image


def test_wiring_and_watchdog_match_the_board_files() -> None:
    boards = ROOT / "firmware" / "device" / "boards"
    for board in ("esp32_oled_encoder", "esp32_buttons"):
        source = (boards / f"{board}.py").read_text()
        pins = re.findall(r"^(?:PIN_\w+|UART_RX|UART_TX) = (\d+)", source, re.M)
        assert pins, board
        for pin in pins:
            assert f"GPIO{pin}" in GUIDE, f"{board}: GPIO{pin} is not in the wiring table"
    watchdog = re.search(r"WDT\(timeout=(\d+)\)", (boards / "esp32_oled_encoder.py").read_text())
    assert watchdog is not None
    assert f"{int(watchdog.group(1)) // 1000}-second hardware watchdog" in GUIDE
