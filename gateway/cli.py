"""`nps-edge gateway` (placeholder until the gateway issue lands)."""

from __future__ import annotations

import typer

from nps_edge.unavailable import not_yet


def register(app: typer.Typer) -> None:
    @app.command(help="Subscribe to devices, buffer durably, forward to the server.")
    def gateway() -> None:
        not_yet("gateway")
