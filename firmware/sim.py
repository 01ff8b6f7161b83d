"""`nps-edge sim` (placeholder until the firmware issue lands)."""

from __future__ import annotations

import typer

from nps_edge.unavailable import not_yet


def register(app: typer.Typer) -> None:
    @app.command(help="Run the real firmware under the MicroPython unix port, one per device.")
    def sim() -> None:
        not_yet("sim")
