"""The gateway's commands are module-level Typer commands: each runs alone on a one-command app."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from gateway.cli import requeue, status


def alone(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def test_requeue_alone_needs_a_store(tmp_path) -> None:
    store = tmp_path / "missing.db"
    result = CliRunner().invoke(alone(requeue), ["--store", str(store)])
    assert result.exit_code == 1
    assert result.stderr == f"error: no gateway store at {store}\n"


def test_status_alone_reports_a_missing_store(tmp_path) -> None:
    result = CliRunner().invoke(alone(status), ["--store", str(tmp_path / "missing.db")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
