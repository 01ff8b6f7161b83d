"""A board command is a module-level Typer command: it runs alone on a one-command app."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from firmware.tools.board_commands import Tools, provision, verify


def test_provision_alone_checks_a_config() -> None:
    app = typer.Typer()
    app.command()(provision)
    args = ["--check-only", "--site", "s1", "--wifi-ssid", "w", "--broker", "[fd00::7]:8883"]
    result = CliRunner().invoke(app, args, env={"NPS_EDGE_WIFI_PASSWORD": "hunter22"})
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout.removesuffix("config ok\n"))
    assert config["broker"]["host"] == "fd00::7" and config["broker"]["port"] == 8883
    assert "hunter22" not in result.stdout


def test_verify_alone_takes_its_runner_from_the_context(tmp_path) -> None:
    app = typer.Typer()
    app.command()(verify)
    made: list[bool] = []

    def make_runner(dry_run: bool):  # never reached: the bundle is missing
        made.append(dry_run)
        raise AssertionError

    result = CliRunner().invoke(
        app, ["--port", "/dev/null", "--bundle", str(tmp_path)], obj=Tools(make_runner)
    )
    assert result.exit_code == 2 and made == []
