"""`nps-edge gateway [OPTIONS]` runs the gateway; `nps-edge gateway status` reports on its store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from gateway import requeue as requeues
from gateway.config import GatewaySettings, load_settings
from gateway.database import StoreError
from gateway.store import Store

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="NPS_EDGE_GATEWAY_CONFIG", help="TOML file of settings."),
]


def _settings(flags: dict[str, Any], config: Path | None) -> GatewaySettings:
    try:
        return load_settings(flags, config)
    except ValidationError as err:
        typer.echo(f"error: invalid gateway settings: {err}", err=True)
        raise typer.Exit(2) from None
    except (OSError, ValueError) as err:
        typer.echo(f"error: cannot read settings: {err}", err=True)
        raise typer.Exit(2) from None


def gateway(  # the group's callback: runs the gateway when no subcommand is given
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Server base URL.")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Gateway token (visible in ps: prefer --token-file or the env)."),
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the gateway token.")] = None,
    server_ca: Annotated[
        Path | None,
        typer.Option(
            help="CA bundle (PEM) that signed the server's HTTPS certificate"
            " (default: httpx's certifi bundle); verification is always on."
        ),
    ] = None,
    broker: Annotated[str | None, typer.Option(help="MQTT broker HOST:PORT.")] = None,
    broker_username: Annotated[
        str | None,
        typer.Option(
            help="The gateway's broker login; the password only from"
            " NPS_EDGE_BROKER_PASSWORD or the config file."
        ),
    ] = None,
    broker_tls: Annotated[
        bool | None,
        typer.Option(
            "--broker-tls/--no-broker-tls", help="MQTT over TLS, the certificate verified."
        ),
    ] = None,
    broker_ca: Annotated[
        Path | None, typer.Option(help="CA certificate (PEM) that signed the broker's.")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="SQLite store file.")] = None,
    gateway_id: Annotated[str | None, typer.Option(help="This gateway's name.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus /metrics port; 0 disables.")
    ] = None,
    synchronous: Annotated[
        str | None, typer.Option(help="SQLite synchronous: FULL (default) or NORMAL.")
    ] = None,
    fw_port: Annotated[
        int | None, typer.Option(help="Port serving release files to devices; 0 disables.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from gateway import logs
    from gateway.service import ConfigError, run_until_signalled

    flags = {
        "server": server,
        "token": token,
        "token_file": token_file,
        "server_ca": server_ca,
        "broker": broker,
        "broker_username": broker_username,
        "broker_tls": broker_tls,
        "broker_ca": broker_ca,
        "store": store,
        "gateway_id": gateway_id,
        "metrics_port": metrics_port,
        "synchronous": synchronous,
        "fw_port": fw_port,
    }
    settings = _settings(flags, config)
    if not settings.server or not settings.token:
        typer.echo(
            "error: --server and --token are required (or --token-file;"
            " NPS_EDGE_SERVER, NPS_EDGE_TOKEN, NPS_EDGE_TOKEN_FILE)",
            err=True,
        )
        raise typer.Exit(2)
    logs.configure(settings.log_level)
    try:
        if not run_until_signalled(settings):
            raise typer.Exit(1)
    except (StoreError, ConfigError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def status(
    store: Annotated[Path | None, typer.Option(help="SQLite store file.")] = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Print the store's depth, oldest age, forwarded, dropped and dead letters."""
    settings = _settings({"store": store}, config)
    try:
        db = Store(settings.store, readonly=True)
        stats = db.stats()
        recent = db.dead_letters(5)
        db.close()
    except StoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    c = stats.counters
    report = {
        "store": str(settings.store),
        "depth": stats.depth,
        "bytes": stats.bytes,
        "oldest_age_s": round(stats.oldest_age(time.time()), 1),
        "received": c.get("received", 0),
        "committed": c.get("committed", 0),
        "forwarded": c.get("forwarded", 0),
        "duplicates": {
            "received": c.get("duplicates_received", 0),
            "server": c.get("duplicates_server", 0),
        },
        "dropped": stats.dropped(),
        "dead_letters": {
            "rows": stats.dead_letters,
            "edge": c.get("dead_letters:edge", 0),
            "server": c.get("dead_letters:server", 0),
            "throttled": c.get("dead_letters:throttled", 0),
        },
        "throttled_devices": stats.throttled(),
        "implausible_ts": c.get("implausible_ts", 0),
        "internal_errors": c.get("internal_errors", 0),
        "halted": stats.state.get("halted"),
    }
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        typer.echo(f"{key:>14}: {value if value is not None else '-'}")
    for at, source, what, reason in recent:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        typer.echo(f"  dead letter {stamp} {source} {what}: {reason}")


def requeue(
    store: Annotated[Path | None, typer.Option(help="SQLite store file.")] = None,
    config: ConfigOpt = None,
    throttled: Annotated[
        bool,
        typer.Option(
            "--throttled",
            help="Instead: put back the throttled messages that are valid events"
            " (a device's burst judged genuine).",
        ),
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="With --throttled: only this device's.")
    ] = None,
) -> None:
    """Put the events the server rejected (dead letters from the server) back in the
    queue, after the server was fixed; safe while the gateway runs."""
    settings = _settings({"store": store}, config)
    if not settings.store.exists():
        typer.echo(f"error: no gateway store at {settings.store}", err=True)
        raise typer.Exit(1)
    try:
        db = Store(settings.store, settings.limits, synchronous=settings.synchronous)
        if throttled:
            n = requeues.throttled(db, settings.topic_root, device)
        else:
            n = requeues.server_dead_letters(db)
        db.close()
    except StoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"requeued {n} events")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Subscribe to devices, buffer durably, forward to the server.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    group.callback()(gateway)
    for command in (status, requeue):
        # One paragraph: the docstring's line breaks would show in the command list.
        group.command(help=" ".join((command.__doc__ or "").split()))(command)
    app.add_typer(group, name="gateway")
