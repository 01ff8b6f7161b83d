"""`nps-edge server` and `nps-edge token create`."""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from typing import Annotated

import typer

from server.settings import DEFAULT_DB, Settings

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help=f"SQLAlchemy URL (default {DEFAULT_DB}; env NPS_EDGE_DB)", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    @app.command(help="Run the API and the dashboard.")
    def server(
        db: DbOption = None,
        host: Annotated[
            str | None, typer.Option(help="address to listen on (env NPS_EDGE_HOST)")
        ] = None,
        port: Annotated[int | None, typer.Option(help="port (env NPS_EDGE_PORT)")] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                help="worker processes, each storing one batch at a time; one per CPU core for"
                " ingest throughput (env NPS_EDGE_WORKERS)"
            ),
        ] = None,
    ) -> None:
        import uvicorn
        from sqlalchemy.exc import SQLAlchemyError

        from server.db import make_engine, upgrade

        for name, value in (("DB", db), ("HOST", host), ("PORT", port), ("WORKERS", workers)):
            if value is not None:
                os.environ[f"NPS_EDGE_{name}"] = str(value)
        settings = Settings()
        try:
            engine = make_engine(settings.db)
            upgrade(engine)  # once, before any worker starts
            engine.dispose()
        except SQLAlchemyError as err:
            typer.echo(
                f"nps-edge server: cannot open the database {settings.db!r}: {err}", err=True
            )
            raise typer.Exit(1) from None
        with ExitStack() as stack:
            if settings.workers > 1:  # each worker's live stream shows every worker's events
                relay = stack.enter_context(tempfile.TemporaryDirectory(prefix="nps-edge-relay-"))
                os.environ["NPS_EDGE_RELAY_DIR"] = relay
            uvicorn.run(
                "server.app:app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level="info",
            )

    token = typer.Typer(help="Create gateway and operator tokens.", no_args_is_help=True)

    @token.command("create", help="Print a new token, and nothing else, on stdout.")
    def create(
        role: Annotated[str, typer.Option(help="gateway or operator")],
        name: Annotated[str, typer.Option(help="who or what holds it (shown in the audit trail)")],
        db: DbOption = None,
    ) -> None:
        from sqlalchemy.exc import SQLAlchemyError
        from sqlmodel import Session

        from server.db import make_engine, upgrade
        from server.tokens import create_token

        url = db or Settings().db
        try:
            engine = make_engine(url)
            upgrade(engine)
            with Session(engine) as session:
                secret = create_token(session, name=name, role=role)
        except ValueError as err:
            typer.echo(f"nps-edge token create: {err}", err=True)
            raise typer.Exit(2) from None
        except SQLAlchemyError as err:
            typer.echo(f"nps-edge token create: cannot open the database {url!r}: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo(secret)

    app.add_typer(token, name="token")
