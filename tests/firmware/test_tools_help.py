"""Every `nps-edge` command explains itself in --help; the firmware tools explain every option."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nps_edge.cli import app


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Depth first through the command tree (Typer ships its own Click, so duck-typed)."""
    yield " ".join(("nps-edge", *path)), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))


def test_the_tree_holds_the_contract_commands() -> None:
    names = {name for name, _ in COMMANDS}
    for required in ("server", "gateway", "sim", "demo", "firmware build", "firmware verify"):
        assert f"nps-edge {required}" in names
    assert {"nps-edge firmware flash", "nps-edge firmware provision"} <= names


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_command_has_help_text(name: str, command: Any) -> None:
    text = (command.help or command.short_help or "").strip()
    assert text, f"`{name}` has no help text"
    assert not text.startswith(("firmware ", "TODO")), f"`{name}` has placeholder help: {text!r}"


FIRMWARE = [(n, c) for n, c in COMMANDS if n.startswith("nps-edge firmware ")]


@pytest.mark.parametrize(("name", "command"), FIRMWARE, ids=[name for name, _ in FIRMWARE])
def test_firmware_options_have_help(name: str, command: Any) -> None:
    bare = [p.name for p in command.params if p.param_type_name == "option" and not p.help]
    assert not bare, f"`{name}` options without help: {bare}"
    result = CliRunner().invoke(app, [*name.split()[1:], "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


# Per-run switches, not settings: no environment variable on purpose.
# --reason repeats and its labels hold spaces, which an environment variable would split.
NOT_SETTINGS = {"help", "dry_run", "check_only", "save", "reason"}


@pytest.mark.parametrize(("name", "command"), FIRMWARE, ids=[name for name, _ in FIRMWARE])
def test_firmware_settings_read_an_environment_variable(name: str, command: Any) -> None:
    options = [p for p in command.params if p.param_type_name == "option"]
    without = [p.name for p in options if p.name not in NOT_SETTINGS and not p.envvar]
    assert not without, f"`{name}` settings without NPS_EDGE_* variable: {without}"
    assert all(str(p.envvar).startswith("NPS_EDGE_") for p in options if p.envvar)
