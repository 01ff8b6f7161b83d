"""`nps-edge release create|rollout|halt|list` and `nps-edge fleet key` (docs/server.md, "Fleet").

Errors become one line on stderr: exit 2 for what the caller can correct (a bad bundle,
signature, version or target), 1 when the database or the key file cannot be used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli import DbOption, _database
from server.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ReleasePub = Annotated[
    str | None,
    typer.Option(
        "--release-pub",
        help="base64 Ed25519 public key of the release key (env NPS_EDGE_RELEASE_PUB)",
        show_default=False,
    ),
]
Version = Annotated[str, typer.Option("--version", help="the release's firmware version")]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--command-key",
        help="the command key file (env NPS_EDGE_COMMAND_KEY; default command.key beside"
        " the SQLite database, else in the working directory)",
        show_default=False,
    ),
]


def _key_settings(db: str | None, command_key: Path | None) -> Settings:
    settings = Settings()
    update: dict[str, object] = {}
    if db:
        update["db"] = db
    if command_key:
        update["command_key"] = str(command_key)
    return settings.model_copy(update=update)


def _command_key(settings: Settings) -> Ed25519PrivateKey:
    from server.fleet import keys

    try:
        return keys.load_or_create(keys.command_key_path(settings))
    except (keys.KeyFileError, OSError) as err:
        typer.echo(f"nps-edge: command key: {err}", err=True)
        raise typer.Exit(1) from None


def fleet_key(db: DbOption = None, command_key: KeyOption = None) -> None:
    """Print the command key's public key (base64), made on first use: the value of the
    devices' `trust.command_pub` (`nps-edge firmware provision`)."""
    from server.fleet import keys

    typer.echo(keys.public_b64(_command_key(_key_settings(db, command_key))))


def release_create(
    bundle: Annotated[
        Path, typer.Option("--bundle", help="the folder `nps-edge firmware build` wrote")
    ],
    db: DbOption = None,
    release_pub: ReleasePub = None,
) -> None:
    """Check a signed bundle (signature, then every file's SHA-256) and store it."""
    from server.fleet.releases import create

    pub = release_pub or Settings().release_pub
    if not pub:
        typer.echo(
            "nps-edge release create: needs --release-pub (or NPS_EDGE_RELEASE_PUB)", err=True
        )
        raise typer.Exit(2)
    with _database("release create", db) as session:
        release = create(session, bundle=bundle, release_pub=pub)
        session.commit()
        typer.echo(
            json.dumps(
                {
                    "version": release.version,
                    "files": release.files,
                    "size": release.size,
                    "manifest_sha256": release.manifest_sha256,
                }  # fmt: skip
            )
        )


def release_rollout(
    version: Version,
    db: DbOption = None,
    percent: Annotated[
        int | None, typer.Option("--percent", min=1, max=100, help="this share of the fleet")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", help="every device of one site")] = None,
    devices: Annotated[
        str | None, typer.Option("--devices", help="these devices, comma-separated")
    ] = None,
    step_answers: Annotated[
        int,
        typer.Option(
            "--step-answers", min=1, help="answers the cohort gives on the new firmware per step"
        ),
    ] = 100,
    command_key: KeyOption = None,
) -> None:
    """Start a staged rollout: the first step's update commands now; the server widens it
    (5, 25, 50, 100 % of the target) step by step, or halts it on its canary."""
    from server.fleet.rollout import Target, start

    if sum(x is not None for x in (percent, site, devices)) > 1:
        typer.echo("nps-edge release rollout: give one of --percent, --site, --devices", err=True)
        raise typer.Exit(2)
    target = Target(
        percent=percent or 100, site=site,
        devices=tuple(d.strip() for d in devices.split(",") if d.strip()) if devices else (),
    )  # fmt: skip
    key = _command_key(_key_settings(db, command_key))
    with _database("release rollout", db) as session:
        rollout = start(
            session, key=key, version=version, target=target, step_answers=step_answers,
            by="cli", now=time.time(),
        )  # fmt: skip
        session.commit()
        typer.echo(
            json.dumps(
                {
                    "rollout": rollout.id,
                    "version": version,
                    "steps": rollout.steps,
                    "cohort": rollout.steps[0],
                }  # fmt: skip
            )
        )


def release_halt(
    version: Version,
    db: DbOption = None,
    reason: Annotated[
        str, typer.Option("--reason", help="why, for the releases page")
    ] = "operator",
    rolled_back: Annotated[
        bool, typer.Option("--rolled-back", help="its cohort was sent back to the old release")
    ] = False,
) -> None:
    """Stop a rollout: no further step (the cohort keeps what it runs)."""
    from server.fleet.rollout import halt

    with _database("release halt", db) as session:
        rollout = halt(
            session, version=version, reason=reason, rolled_back=rolled_back, now=time.time()
        )
        session.commit()
        typer.echo(f"rollout of {version}: {rollout.state}", err=True)


def register(app: typer.Typer) -> None:
    release = typer.Typer(help="Firmware releases and staged rollouts.", no_args_is_help=True)
    release.command("create", help="Check a signed bundle and store it as a release.")(
        release_create
    )
    release.command("rollout", help="Start a staged rollout of a release.")(release_rollout)
    release.command("halt", help="Stop a release's rollout.")(release_halt)
    app.add_typer(release, name="release")
    fleet = typer.Typer(help="Fleet commands' signing key.", no_args_is_help=True)
    fleet.command("key", help="Print the command key's public key (base64).")(fleet_key)
    app.add_typer(fleet, name="fleet")
