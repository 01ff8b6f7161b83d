"""`nps-edge demo`: the whole system on one machine with embedded defaults."""

from __future__ import annotations

import typer

from nps_edge.unavailable import not_yet


def register(app: typer.Typer) -> None:
    @app.command(help="Run broker, server, gateway and simulated devices on this machine.")
    def demo() -> None:
        not_yet("demo")
