"""`sim` is a module-level Typer command: it runs alone on a one-command app."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from firmware.sim.run import sim


def app() -> typer.Typer:
    one = typer.Typer()
    one.command()(sim)
    return one


def test_sim_alone_refuses_a_bad_broker_address() -> None:
    result = CliRunner().invoke(app(), ["--broker", "gw:http"])
    assert result.exit_code == 2
    words = " ".join(result.stderr.replace("│", " ").split())
    assert "Invalid value for '--broker': expected HOST, HOST:PORT or [IPV6]:PORT" in words
    assert "got 'gw:http'" in words


def test_sim_alone_reads_an_ipv6_broker_and_checks_the_scenario(tmp_path) -> None:
    result = CliRunner().invoke(app(), ["--broker", "[::1]:1", "--scenario", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"nps-edge sim: no *.json scenario files in {tmp_path}\n"
