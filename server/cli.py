"""`nps-edge server`, `nps-edge db upgrade|retention`, `nps-edge token create|list|revoke`,
`nps-edge device add|list|revoke|voice-key`.

Migrations run once per start of `server` (before its workers) and on `db upgrade`;
the app itself only checks the schema is current. The identity commands, one-shot
and often run before the first `server` start (README's setup, the demo), bring a
database to the current schema as they open it.

Library errors become one clear line on stderr: exit 2 for input the caller can
correct (a bad role, site or id, a duplicate, an unknown name), 1 when the
database cannot be opened or written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from server.settings import DEFAULT_DB, Settings

if TYPE_CHECKING:
    from pydantic import BaseModel

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help=f"SQLAlchemy URL (default {DEFAULT_DB}; env NPS_EDGE_DB)", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="one JSON object per line")]


def server(
    db: DbOption = None,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (env NPS_EDGE_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (env NPS_EDGE_PORT)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="worker processes, each storing one batch at a time; for ingest throughput one"
            " per CPU core on SQLite, one more than the cores on PostgreSQL (env NPS_EDGE_WORKERS)"
        ),
    ] = None,
) -> None:
    """Run the API and the dashboard."""
    import uvicorn

    # Workers get their settings through the environment, on purpose: with workers > 1
    # uvicorn spawns fresh processes that import "server.app:app_from_env" by name and
    # call it with no arguments (a factory cannot be handed an object across spawn),
    # so NPS_EDGE_* is the one channel that reaches them; Settings reads it back.
    for name, value in (("DB", db), ("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"NPS_EDGE_{name}"] = str(value)
    settings = Settings()
    _upgrade("server", settings.db)  # once, before any worker starts
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
            # Forwarded headers are believed only from settings.trusted_proxies
            # (server/api/origin.py); uvicorn would believe 127.0.0.1 by default.
            proxy_headers=False,
            # uvicorn kills a worker that does not answer its health ping within 5 s and
            # starts another; on a busy 2-core box a fresh worker needs longer than that to
            # import the app, so workers were killed and respawned in a loop (chaos suite,
            # docs/chaos.md: 30-40 s per server restart). A hung worker still goes, later.
            timeout_worker_healthcheck=60,
        )


def _upgrade(command: str, url: str) -> None:
    """Bring the database at `url` to the migrations' head; errors become exit 1."""
    from server.db.engine import make_engine, upgrade

    try:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    except SQLAlchemyError as err:
        shown = make_url(url).render_as_string(hide_password=True)
        typer.echo(f"nps-edge {command}: cannot open the database {shown!r}: {err}", err=True)
        raise typer.Exit(1) from None


def db_upgrade(db: DbOption = None) -> None:
    """Bring the database to the current schema (Alembic `upgrade head`); safe to rerun."""
    _upgrade("db upgrade", db or Settings().db)
    typer.echo("database at the current schema", err=True)


def db_retention(
    keep_months: Annotated[
        int,
        typer.Option(
            "--keep-months", min=0, help="whole months kept before the current one (always kept)"
        ),
    ],
    db: DbOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would go; drop nothing")
    ] = False,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table", help="feedback or telemetry (repeatable; default both)", show_default=False
        ),
    ] = None,
) -> None:
    """Drop whole month partitions of raw feedback and telemetry older than the kept months.

    One line per partition on stdout; the rollups, and so past NPS figures, stay."""
    from server.db.engine import make_engine
    from server.db.partitions import PARTITIONED, retention

    url = db or Settings().db
    with _exits("db retention", url):
        engine = make_engine(url)
        try:
            tables = table or PARTITIONED
            dropped, stray = retention(
                engine, keep_months=keep_months, tables=tables, dry_run=dry_run
            )
        finally:
            engine.dispose()
    verb = "would drop" if dry_run else "dropped"
    for d in dropped:
        typer.echo(f"{verb} {d.name}: {d.table} of {d.month}, {d.rows} rows, {d.bytes} bytes")
    typer.echo(
        f"{verb} {len(dropped)} partitions and {stray} older rows of the default partitions",
        err=True,
    )


@contextmanager
def _database(command: str, db: str | None) -> Iterator[Session]:
    """A session on the migrated database; library errors turned into exit codes."""
    from server.db.engine import make_engine, upgrade

    url = db or Settings().db
    with _exits(command, url):
        engine = make_engine(url)
        try:
            upgrade(engine)
            with Session(engine, expire_on_commit=False) as session:
                yield session
        finally:
            engine.dispose()


@contextmanager
def _exits(command: str, url: str) -> Iterator[None]:
    """Library errors as clean messages and exit codes: a named error (the registry's, the
    tokens', retention's) exits 2, a database that cannot be used exits 1."""
    try:
        yield
    except ValueError as err:
        typer.echo(f"nps-edge {command}: {err}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as err:
        shown = make_url(url).render_as_string(hide_password=True)
        typer.echo(f"nps-edge {command}: cannot use the database {shown!r}: {err}", err=True)
        raise typer.Exit(1) from None


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


M = TypeVar("M", bound="BaseModel")  # a *Public model


def _listing(
    rows: Sequence[M], as_json: bool, header: list[str], cells: Callable[[M], list[str]]
) -> None:
    """`rows` as JSON lines, or as a table under `header`."""
    if as_json:
        for r in rows:
            typer.echo(r.model_dump_json())
    else:
        _table([header, *map(cells, rows)])


def token_create(
    role: Annotated[
        str, typer.Option(help="gateway, viewer, operator or admin", envvar="NPS_EDGE_ROLE")
    ],
    name: Annotated[
        str,
        typer.Option(
            help="who or what holds it; a gateway's token name is its gateway id",
            envvar="NPS_EDGE_NAME",
        ),
    ],
    site: Annotated[
        str | None,
        typer.Option(
            help="required for a gateway (its site); limits a person to one site",
            envvar="NPS_EDGE_SITE",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Print a new token, and nothing else, on stdout."""
    from server.identity.tokens import create_token

    with _database("token create", db) as session:
        secret = create_token(session, name=name, role=role, site=site)
    typer.echo(secret)


def token_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every token's name, role, site, creation, last use and revocation; never the secret."""
    from server.identity.tokens import list_tokens
    from server.models.auth import TokenPublic

    with _database("token list", db) as session:
        rows = [TokenPublic.model_validate(t, from_attributes=True) for t in list_tokens(session)]
    _listing(
        rows, as_json, ["NAME", "ROLE", "SITE", "CREATED", "LAST USED", "REVOKED"],
        lambda r: [r.name, r.role, r.site or "-", _when(r.created_at), _when(r.last_used_at),
                   _when(r.revoked_at)],
    )  # fmt: skip


def token_revoke(
    name: Annotated[
        str, typer.Option(help="the token's name, as `token list` shows it", envvar="NPS_EDGE_NAME")
    ],
    db: DbOption = None,
) -> None:
    """Revoke the live tokens of that name; refused from the next request on."""
    from server.identity.tokens import revoke_token

    with _database("token revoke", db) as session:
        n = len(revoke_token(session, name=name))
    typer.echo(f"revoked {n} token{'s' if n != 1 else ''} named {name!r}", err=True)


def device_add(
    site: Annotated[
        str, typer.Option(help="the site the device belongs to", envvar="NPS_EDGE_SITE")
    ],
    device_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="device id (default nps- and 6 random hex digits)",
            envvar="NPS_EDGE_DEVICE_ID",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Register a device; print one JSON line with its broker login, shown only this once."""
    from server.identity.registry import add_device

    with _database("device add", db) as session:
        row, password = add_device(session, site=site, device_id=device_id)
    line = {"device": row.device, "site": row.site, "username": row.username, "password": password}
    typer.echo(json.dumps(line))


def device_list(
    db: DbOption = None,
    site: Annotated[
        str | None, typer.Option(help="only this site's devices", envvar="NPS_EDGE_SITE")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The registered devices (revoked ones too); never the password hash."""
    from server.identity.registry import list_devices
    from server.models.registry import RegisteredDevicePublic

    with _database("device list", db) as session:
        rows = [
            RegisteredDevicePublic.model_validate(d, from_attributes=True)
            for d in list_devices(session, site=site)
        ]
    _listing(
        rows, as_json, ["DEVICE", "SITE", "USERNAME", "CREATED", "REVOKED"],
        lambda r: [r.device, r.site, r.username, _when(r.created_at), _when(r.revoked_at)],
    )  # fmt: skip


def device_revoke(
    device_id: Annotated[
        str, typer.Option("--id", help="the device to revoke", envvar="NPS_EDGE_DEVICE_ID")
    ],
    db: DbOption = None,
) -> None:
    """Revoke a device: its events are rejected at once; the broker refuses it once its
    config is written again (`nps-edge broker config`) and reloaded."""
    from server.identity.registry import revoke_device

    with _database("device revoke", db) as session:
        row = revoke_device(session, device_id=device_id)
    typer.echo(f"revoked {row.device} (site {row.site})", err=True)


def device_voice_key(
    device_id: Annotated[str, typer.Option("--id", help="the device", envvar="NPS_EDGE_DEVICE_ID")],
    db: DbOption = None,
) -> None:
    """Print the device's voice key (base64) for its config `voice.key` (server/voice/keys.py)."""
    from server.voice.commands import voice_key

    settings = Settings(db=db) if db else Settings()
    try:
        typer.echo(voice_key(settings, device_id))
    except ValueError as err:
        typer.echo(f"nps-edge device voice-key: {err}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command(help="Run the API and the dashboard.")(server)
    token = typer.Typer(help="Gateway and people's tokens.", no_args_is_help=True)
    token.command("create", help="Print a new token, and nothing else, on stdout.")(token_create)
    token.command("list", help="List tokens: name, role, site, created, last used, revoked.")(
        token_list
    )
    token.command("revoke", help="Revoke a token by name; effective on the next request.")(
        token_revoke
    )
    app.add_typer(token, name="token")
    database = typer.Typer(help="The server's database.", no_args_is_help=True)
    database.command("upgrade", help="Bring the database to the current schema (migrations).")(
        db_upgrade
    )
    database.command(
        "retention", help="Drop whole old month partitions of raw events (PostgreSQL)."
    )(db_retention)
    app.add_typer(database, name="db")
    device = typer.Typer(help="The device registry.", no_args_is_help=True)
    device.command("add", help="Register a device; prints one JSON line with its login.")(
        device_add
    )
    device.command("list", help="List registered devices.")(device_list)
    device.command("revoke", help="Revoke a registered device.")(device_revoke)
    device.command("voice-key", help="Print a device's voice key (base64) for provisioning.")(
        device_voice_key
    )
    app.add_typer(device, name="device")
