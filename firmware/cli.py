"""`nps-edge firmware ...` (placeholder until the firmware issue lands); `sim` lives in sim.py."""

from __future__ import annotations

import typer

from firmware import sim
from nps_edge.unavailable import not_yet


def register(app: typer.Typer) -> None:
    fw = typer.Typer(
        help="Field engineers' tools: build, flash, provision, verify.", no_args_is_help=True
    )
    for name in ("build", "flash", "provision", "verify"):
        fw.command(name, help=f"firmware {name}")(lambda name=name: not_yet(f"firmware {name}"))
    app.add_typer(fw, name="firmware")
    sim.register(app)
