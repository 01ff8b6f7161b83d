"""A clear answer for commands whose issue has not landed yet."""

from __future__ import annotations

import typer


def not_yet(command: str) -> None:
    typer.echo(f"nps-edge {command}: not yet available in this version.", err=True)
    raise typer.Exit(2)
