"""`nps-edge broker config` and `nps-edge broker certs`: the site broker from the registry.

Who reaches these: whoever runs them on the site's machine with access to the
server database (`--db`) and the output folder; nothing here listens on a port.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from broker.certs import DEFAULT_NAMES, CertError, KeyPair, make_ca, make_server_cert
from broker.config import (
    DEFAULT_HOST,
    BrokerConfigError,
    Login,
    TlsFiles,
    check_device,
    default_port,
    gateway_address,
    gateway_username,
    render,
    render_gateway_toml,
)
from broker.files import Owner, broker_dir, broker_owner, closed_parents, data_dir, write_private

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"


class RegistryUnavailable(RuntimeError):
    """The database cannot be read or holds no device registry."""


def registry_logins(url: str, site: str) -> tuple[list[Login], int]:
    """The site's active device logins (unchecked) and how many revoked ones were left out."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from server.db.engine import make_engine
    from server.identity.registry import list_devices

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # A mistyped path must not become a new, empty database and so a broker without devices.
        if not parsed.database or not Path(parsed.database).expanduser().is_file():
            raise RegistryUnavailable(f"no SQLite database at {parsed.database!r}")
    try:
        engine = make_engine(url)
        try:
            if not inspect(engine).has_table("registered_device"):
                raise RegistryUnavailable(
                    f"{url!r} has no device registry: run `nps-edge server` once (it migrates)"
                    " or `nps-edge device add`"
                )
            with Session(engine) as session:
                rows = list_devices(session, site=site)
        finally:
            engine.dispose()
    except SQLAlchemyError as err:
        raise RegistryUnavailable(f"cannot read the database {url!r}: {err}") from None
    active = [Login(row.username, row.password_hash) for row in rows if row.revoked_at is None]
    return active, len(rows) - len(active)


def gateway_password(toml_path: Path) -> str:
    """The password already in gateway.toml (so a running gateway keeps working), else a new one."""
    if not toml_path.exists():
        return secrets.token_urlsafe(24)  # 192 random bits, like a device's
    try:
        kept = tomllib.loads(toml_path.read_text()).get("broker_password")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise BrokerConfigError(
            f"{toml_path} cannot be read ({err}); remove it to make a new gateway password"
        ) from None
    if not isinstance(kept, str) or not kept:
        raise BrokerConfigError(f"{toml_path} has no broker_password; remove it to make a new one")
    return kept


def write_config(
    *,
    db: str,
    site: str,
    out: Path,
    port: int | None = None,
    host: str = DEFAULT_HOST,
    tls: bool = False,
    certs: Path | None = None,
) -> list[str]:
    """Write the four files; returns the lines to tell the user (one per file, then how to run)."""
    from server.identity.registry import mosquitto_hash

    gateway_username(site)  # checks the site's pattern before anything is read or made
    out = out.expanduser().resolve()
    port = port or default_port(tls)
    tls_files = None
    if tls:
        folder = (certs or out).expanduser().resolve()
        tls_files = TlsFiles(folder / CA_CERT, folder / SERVER_CERT, folder / SERVER_KEY)
        missing = [p for p in (tls_files.ca, tls_files.cert, tls_files.key) if not p.is_file()]
        if missing:
            raise BrokerConfigError(
                f"{', '.join(map(str, missing))} missing: run"
                f" `nps-edge broker certs --site {site} --out {folder}` first"
            )
    active, revoked = registry_logins(db, site)
    # A row that cannot be written safely (one written around the registry's checks) is
    # left out and named, so it cannot stop the others' changes, revocations above all.
    devices, left_out = [], []
    for login in active:
        try:
            check_device(login, site=site)
        except BrokerConfigError as err:
            left_out.append(f"warning: left out {login.username!r}: {err}")
            continue
        devices.append(login)
    toml_path = out / "gateway.toml"
    password = gateway_password(toml_path)
    gateway = Login(gateway_username(site), mosquitto_hash(password))
    files = render(
        site=site, out=out, port=port, host=host, devices=devices, gateway=gateway, tls=tls_files
    )
    gateway_toml = render_gateway_toml(
        site=site,
        broker=gateway_address(host, port),
        password=password,
        tls=tls,
        ca=tls_files.ca if tls_files else None,
    )
    owner = broker_owner()
    broker_dir(out, owner=owner)
    data_dir(out / "data", owner=owner)
    for name, text in (("passwd", files.passwd), ("acl", files.acl)):
        write_private(out / name, text.encode(), owner=owner)
    # The conf last: a broker reloading meanwhile finds the files it names.
    write_private(out / "mosquitto.conf", files.conf.encode(), owner=owner)
    write_private(toml_path, gateway_toml.encode(), owner=None)  # the gateway's, not the broker's
    who = f"owner {owner.name}" if owner else "owner: you"
    listener = f"{'TLS ' if tls else ''}listener {host}:{port}"
    lines = [
        f"wrote {out / 'mosquitto.conf'} ({listener}, {who}, 0600)",
        f"wrote {out / 'passwd'} ({len(devices)} devices of site {site} + {gateway.username};"
        f" {revoked} revoked left out)",
        f"wrote {out / 'acl'} (each device its own topics; {gateway.username} reads all,"
        " writes cmd)",
        f"wrote {toml_path} (the gateway's login: nps-edge gateway --config {toml_path})",
    ]
    lines += left_out + _closed_warnings(out, owner)
    lines += [
        f"run:    mosquitto -c {out / 'mosquitto.conf'}",
        "reload: kill -HUP <mosquitto's pid> (or systemctl reload mosquitto) after each run:"
        " revoked devices are disconnected and refused",
    ]
    return lines


def write_certs(
    *, site: str, out: Path, names: list[str], now: dt.datetime | None = None
) -> list[str]:
    """The site CA (kept when out already has one) and a new broker certificate."""
    now = now or dt.datetime.now(dt.UTC)
    gateway_username(site)  # checks the site's pattern before anything is made
    out = out.expanduser().resolve()
    ca_cert, ca_key = out / CA_CERT, out / CA_KEY
    owner = broker_owner()
    lines = []
    if ca_cert.exists() or ca_key.exists():
        try:
            ca = KeyPair(ca_cert.read_bytes(), ca_key.read_bytes())
        except OSError as err:
            raise CertError(f"the site CA is incomplete ({err}); remove both ca.* files") from None
        lines.append(f"kept   {ca_cert} (the site CA every device holds)")
    else:
        ca = make_ca(site, now=now)
    server = make_server_cert(ca, names, now=now)
    broker_dir(out, owner=owner)
    if not lines:
        write_private(ca_key, ca.key, owner=None)  # never the broker's: it signs certificates
        write_private(ca_cert, ca.cert, owner=owner, mode=0o644)
        lines += [
            f"wrote  {ca_key} (the site CA's key: keep it offline, 0600)",
            f"wrote  {ca_cert} (give it to devices as broker.ca and to the gateway as broker_ca)",
        ]
    write_private(out / SERVER_KEY, server.key, owner=owner)
    write_private(out / SERVER_CERT, server.cert, owner=owner, mode=0o644)
    shown = ", ".join([*names, *DEFAULT_NAMES])
    lines += [
        f"wrote  {out / SERVER_KEY} (the broker's key, 0600)",
        f"wrote  {out / SERVER_CERT} (for {shown}; valid 2 years)",
    ]
    lines += _closed_warnings(out, owner)
    lines.append(
        f"next:   nps-edge broker config --tls --certs {out} ...; a running broker takes a new"
        " certificate on kill -HUP"
    )
    return lines


def _closed_warnings(out: Path, owner: Owner | None) -> list[str]:
    if owner is None:
        return []
    return [
        f"warning: {parent} is closed to user {owner.name}; the broker will not reach {out}"
        for parent in closed_parents(out, owner)
    ]


def _fail(command: str, err: Exception, code: int) -> typer.Exit:
    typer.echo(f"nps-edge broker {command}: {err}", err=True)
    return typer.Exit(code)


def config(
    site: Annotated[
        str, typer.Option(help="the site whose devices may connect", envvar="NPS_EDGE_SITE")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="folder for mosquitto.conf, passwd, acl, gateway.toml", envvar="NPS_EDGE_OUT"
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the server database (env NPS_EDGE_DB)"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="listener port (default 1883, 8883 with --tls)")
    ] = None,
    host: Annotated[
        str, typer.Option(help="listener address (0.0.0.0: every interface)")
    ] = DEFAULT_HOST,
    tls: Annotated[bool, typer.Option("--tls", help="MQTT over TLS only")] = False,
    certs: Annotated[
        Path | None,
        typer.Option(help="folder of ca.crt, server.crt, server.key (default: --out)"),
    ] = None,
) -> None:
    """Write the site broker's config from the device registry (rerun and SIGHUP to apply)."""
    from server.settings import Settings

    try:
        lines = write_config(
            db=db or Settings().db, site=site, out=out, port=port, host=host, tls=tls, certs=certs
        )
    except BrokerConfigError as err:
        raise _fail("config", err, 2) from None
    except (RegistryUnavailable, OSError) as err:
        raise _fail("config", err, 1) from None
    for line in lines:
        typer.echo(line, err=True)


def certs(
    site: Annotated[str, typer.Option(help="the site (named in the CA)", envvar="NPS_EDGE_SITE")],
    out: Annotated[
        Path,
        typer.Option(
            help="folder for ca.crt, ca.key, server.crt, server.key", envvar="NPS_EDGE_OUT"
        ),
    ],
    name: Annotated[
        list[str] | None,
        typer.Option(help="a host name or IP devices use for the broker (repeatable)"),
    ] = None,
) -> None:
    """Make the site CA (once) and a broker certificate for --name values, 127.0.0.1, localhost."""
    try:
        lines = write_certs(site=site, out=out, names=name or [])
    except (CertError, BrokerConfigError) as err:
        raise _fail("certs", err, 2) from None
    except OSError as err:
        raise _fail("certs", err, 1) from None
    for line in lines:
        typer.echo(line, err=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The site's Mosquitto: logins and ACL from the registry, TLS certificates.",
        no_args_is_help=True,
    )
    group.command("config")(config)
    group.command("certs")(certs)
    app.add_typer(group, name="broker")
