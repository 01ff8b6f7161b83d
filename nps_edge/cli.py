"""`nps-edge`: a thin dispatcher; each part owns its subcommands next to its code."""

from __future__ import annotations

import typer

from broker import cli as broker_cli
from firmware import cli as firmware_cli
from gateway import cli as gateway_cli
from nps_edge import demo as demo_cli
from server import cli as server_cli
from server.fleet import cli as fleet_cli
from server.people import cli as people_cli

app = typer.Typer(
    name="nps-edge",
    help="Transactional NPS from connected devices: firmware tools, edge gateway, server, demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for part in (server_cli, people_cli, fleet_cli, gateway_cli, broker_cli, firmware_cli, demo_cli):
    part.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
