"""`nps-edge server` and `nps-edge token` (placeholder until the server issue lands)."""

from __future__ import annotations

import typer

from nps_edge.unavailable import not_yet


def register(app: typer.Typer) -> None:
    @app.command(help="Run the API and the dashboard.")
    def server() -> None:
        not_yet("server")

    token = typer.Typer(help="Create gateway and operator tokens.", no_args_is_help=True)

    @token.command("create", help="Print a new token on stdout.")
    def create() -> None:
        not_yet("token create")

    app.add_typer(token, name="token")
